"""Measure the dashboard's upstream reads against a sandbox served over a real socket.

Starts `runserver` on a loopback port with added latency (SANDBOX_LATENCY_MS), then times
the group detail read (side by side vs one after another), building the group index, and
walking every page of the largest group's users. Prints figures; asserts nothing.
"""

from __future__ import annotations

import copy
import logging
import statistics
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from groups_app.management.commands._loopback import benchmark_env, loopback_server, sandbox_command
from groups_app.segment import SegmentClient
from groups_app.services.groups import group_detail


class Command(BaseCommand):
    help = "Time the upstream reads of the group pages against a local sandbox server (prints figures)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--latency-ms", type=int, default=100, help="Latency the sandbox adds to each call."
        )
        parser.add_argument("--runs", type=int, default=5, help="Repetitions of each measurement (1-50).")
        parser.add_argument("--port", type=int, default=8765, help="Loopback port for the sandbox server.")

    def handle(self, *args: Any, latency_ms: int, runs: int, port: int, **options: Any) -> None:
        runs = max(1, min(runs, 50))
        logging.getLogger("groups_app.segment").setLevel(
            logging.WARNING
        )  # one line per call would drown the figures
        base = f"http://127.0.0.1:{port}"
        with self._sandbox_server(port, latency_ms):
            client = SegmentClient(f"{base}/sandbox/api", settings.SANDBOX_API_TOKEN, timeout=(2, 30))
            groups = list(client.iter_user_groups())
            if not groups:
                raise CommandError("The sandbox has no groups: run `manage.py seed_sandbox` first.")
            largest = max(groups, key=lambda g: g.member_count)
            self.stdout.write(f"Sandbox on {base}, {latency_ms} ms added per call, {runs} runs each.")
            self.stdout.write(f"Largest group: {largest.name} ({largest.member_count} members)\n")
            figures = [
                (
                    "group detail, reads side by side",
                    self._time(runs, lambda: group_detail(group_id=largest.id, client=client)),
                ),
                (
                    "group detail, reads one after another",
                    self._time(runs, lambda: group_detail(group_id=largest.id, client=_sequential(client))),
                ),
                (
                    "index of all groups (count=200)",
                    self._time(runs, lambda: list(client.iter_user_groups())),
                ),
                (
                    f"every user of {largest.name}",
                    self._time(runs, lambda: list(client.iter_users_from_user_group(largest.id))),
                ),
            ]
        width = max(len(name) for name, _ in figures)
        self.stdout.write(f"{'measurement'.ljust(width)}  median ms     min ms     max ms")
        for name, samples in figures:
            ms = [s * 1000 for s in samples]
            self.stdout.write(
                f"{name.ljust(width)}  {statistics.median(ms):9.1f}  {min(ms):9.1f}  {max(ms):9.1f}"
            )

    @staticmethod
    def _time(runs: int, call) -> list[float]:
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            call()
            samples.append(time.perf_counter() - started)
        return samples

    @staticmethod
    def _sandbox_server(port: int, latency_ms: int):
        env = benchmark_env(
            SEGMENT_API_TOKEN="",
            SANDBOX_LATENCY_MS=str(latency_ms),
            SANDBOX_READ_LIMIT_PER_MINUTE="100000",
        )
        return loopback_server(sandbox_command(port), env, port, "sandbox")


def _sequential(client: SegmentClient) -> SegmentClient:
    """The same client (same session), told not to run requests side by side."""
    sequential = copy.copy(client)
    sequential.concurrent_requests = False
    return sequential
