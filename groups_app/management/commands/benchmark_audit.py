"""Time the audit log's text search (first page and count) and CSV export at scale.

Inserts --entries audit entries inside a transaction, times the searches, then rolls the
transaction back. Meant for PostgreSQL, where the text filter is served by a trigram index.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from groups_app.models import AuditEntry
from groups_app.services.audit_log import audit_csv_rows, audit_entries

BATCH = 5000


class _RollBack(Exception):
    pass


class Command(BaseCommand):
    help = "Time the audit log's text search over many entries (inserted, then rolled back)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--entries", type=int, default=300_000, help="How many entries (1,000-1,000,000)."
        )
        parser.add_argument("--runs", type=int, default=5)

    def handle(self, *args: Any, entries: int, runs: int, **options: Any) -> None:
        entries = max(1000, min(entries, 1_000_000))
        try:
            with transaction.atomic():
                started = time.perf_counter()
                self._insert(entries)
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("ANALYZE groups_app_auditentry")
                self.stdout.write(
                    f"{connection.vendor}: inserted {entries} entries in {time.perf_counter() - started:.1f} s"
                )
                for label, text in (
                    ("a rare email", "person4242@"),
                    ("a common word", "added"),
                    ("no match", "zzzq"),
                ):
                    samples = []
                    for _ in range(max(1, runs)):
                        began = time.perf_counter()
                        found = audit_entries(text=text)
                        list(found[:50])
                        found.count()
                        samples.append((time.perf_counter() - began) * 1000)
                    self.stdout.write(
                        f"text search, {label:<14} median {statistics.median(samples):8.1f} ms, max {max(samples):8.1f} ms"
                    )
                began = time.perf_counter()
                chunks = characters = 0
                for chunk in audit_csv_rows(audit_entries()):
                    chunks += 1
                    characters += len(chunk)
                self.stdout.write(
                    f"CSV export of every entry: {time.perf_counter() - began:.1f} s, "
                    f"{characters / 1_000_000:.0f} MB in {chunks} chunks of at most 64 KiB"
                )
                raise _RollBack
        except _RollBack:
            self.stdout.write("Rolled back: nothing was kept.")

    @staticmethod
    def _insert(count: int) -> None:
        now = timezone.now()
        for start in range(0, count, BATCH):
            batch = []
            for number in range(start, min(count, start + BATCH)):
                entry = AuditEntry(
                    created_at=now,
                    actor_username="hana",
                    action="members.add",
                    group_id=f"group{number % 2000}",
                    group_name=f"Group {number % 2000}",
                    summary=f"hana added 1 member to Group {number % 2000}",
                    details={"emails": [f"person{number}@example.com"], "already_members": []},
                    status="succeeded",
                )
                entry.search_text = entry.text_to_search()
                batch.append(entry)
            AuditEntry.objects.bulk_create(batch)
