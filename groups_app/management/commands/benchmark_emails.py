"""Time the reading of pasted email lists: ordinary and adversarial pastes of 32 KiB and of
MAX_EMAIL_LIST_BYTES (256 KiB), split into entries and then turned into candidate addresses.

It prints figures only; no test depends on timing (the tests assert what is read, and that a
paste of the largest size is read at all).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from groups_app.emails import parse_emails


def pastes(size: int) -> dict[str, str]:
    """Texts of about `size` bytes: what people paste, and what once took quadratic time."""

    def fill(unit: str) -> str:
        return unit * max(1, size // len(unit.encode()))

    def numbered(unit: str) -> str:
        count = max(1, size // len(unit.format(n=10**6).encode()))
        return "".join(unit.format(n=n + 10**6) for n in range(count))

    return {
        "bare addresses": numbered("person{n}@example.com, "),
        "named entries": numbered('"Lovelace, Ada" <ada{n}@example.com>\n'),
        "commas, no address": fill("a, "),
        "names, no brackets": fill("Ada Lovelace, "),
        "unclosed quotes": fill('"a, '),
        "unclosed brackets": fill("a <"),
    }


class Command(BaseCommand):
    help = "Time how long pasted email lists take to read (ordinary and adversarial, 32 KiB and the cap)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--runs", type=int, default=5)

    def handle(self, *args: Any, runs: int, **options: Any) -> None:
        self.stdout.write(f"{'paste'.ljust(34)}  {'KiB':>5}  median ms     max ms  addresses")
        for size in (32 * 1024, settings.MAX_EMAIL_LIST_BYTES):
            for name, text in pastes(size).items():
                samples = []
                for _ in range(max(1, runs)):
                    began = time.perf_counter()
                    parsed = parse_emails(text)
                    samples.append((time.perf_counter() - began) * 1000)
                self.stdout.write(
                    f"{name.ljust(34)}  {len(text.encode()) // 1024:>5}  {statistics.median(samples):9.1f}  "
                    f"{max(samples):9.1f}  {len(parsed.emails):>9}"
                )
