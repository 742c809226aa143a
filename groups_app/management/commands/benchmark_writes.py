"""Flood the dashboard with writes past Segment's rate limit and time what else it serves meanwhile.

Starts a sandbox API server (60 writes a minute, added latency) and, in front of it, the
dashboard under gunicorn with threaded workers, as in production. Writer threads add
members as fast as they can while a prober times /healthz and a group's page. Prints
p50/p99 of each; asserts nothing. Everything runs on loopback and stops by itself.
"""

from __future__ import annotations

import logging
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from groups_app.management.commands._loopback import benchmark_env, loopback_server, sandbox_command
from groups_app.segment import SegmentClient
from groups_app.services.workspace import group_is_privileged

MAX_WRITES_PER_THREAD = 500


class Command(BaseCommand):
    help = (
        "Flood member additions past the rate limit while timing /healthz and a group page (prints figures)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--writers", type=int, default=12, help="Threads posting additions (1-32).")
        parser.add_argument("--seconds", type=float, default=20, help="How long to flood (1-120).")
        parser.add_argument("--latency-ms", type=int, default=100, help="Latency the sandbox adds per call.")
        parser.add_argument(
            "--dashboard-threads", type=int, default=8, help="gunicorn threads of the dashboard."
        )
        parser.add_argument("--port", type=int, default=8766, help="First of two loopback ports to use.")

    def handle(
        self,
        *args: Any,
        writers: int,
        seconds: float,
        latency_ms: int,
        dashboard_threads: int,
        port: int,
        **options: Any,
    ) -> None:
        writers = max(1, min(writers, 32))
        seconds = max(1.0, min(seconds, 120.0))
        logging.getLogger("groups_app.segment").setLevel(logging.WARNING)
        sandbox_url = f"http://127.0.0.1:{port}"
        dashboard_url = f"http://127.0.0.1:{port + 1}"
        password = secrets.token_urlsafe(16)
        with ExitStack() as stack:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="group-admin-bench-")))
            stack.enter_context(self._sandbox(port, latency_ms))
            client = SegmentClient(f"{sandbox_url}/sandbox/api", settings.SANDBOX_API_TOKEN, timeout=(2, 30))
            roles = {role.id: role for role in client.iter_roles()}
            group = next(
                (
                    g
                    for g in client.iter_user_groups()
                    if (not g.permissions or g.member_count < 200) and not group_is_privileged(g, roles)
                ),
                None,
            )
            if group is None:
                raise CommandError("The sandbox has no groups: run `manage.py seed_sandbox` first.")
            stack.enter_context(self._dashboard(port + 1, sandbox_url, workdir, password, dashboard_threads))
            self.stdout.write(
                f"Sandbox {sandbox_url} ({latency_ms} ms per call, 60 writes/min); dashboard {dashboard_url} "
                f"(gunicorn, {dashboard_threads} threads, deadline {settings.SEGMENT_REQUEST_DEADLINE:g} s).\n"
                f"{writers} writers add members to {group.name} for {seconds:g} s.\n"
            )
            results = _flood(dashboard_url, group.id, password, writers, seconds)
        self._report(results)

    def _report(self, results: dict[str, Any]) -> None:
        self.stdout.write(f"{'measurement':<28} {'count':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
        for name in ("healthz", "group page", "member additions"):
            samples = [s * 1000 for s in results[name]]
            if not samples:
                self.stdout.write(f"{name:<28} {0:>6}")
                continue
            self.stdout.write(
                f"{name:<28} {len(samples):>6} {_percentile(samples, 50):>9.1f} "
                f"{_percentile(samples, 99):>9.1f} {max(samples):>9.1f}"
            )
        outcomes = ", ".join(f"{count} × {status}" for status, count in sorted(results["statuses"].items()))
        self.stdout.write(f"\nAddition responses: {outcomes or 'none'}")

    @contextmanager
    def _sandbox(self, port: int, latency_ms: int) -> Iterator[None]:
        env = benchmark_env(
            SEGMENT_API_TOKEN="",
            SANDBOX_LATENCY_MS=str(latency_ms),
            SANDBOX_READ_LIMIT_PER_MINUTE="100000",
            SANDBOX_WRITE_LIMIT_PER_MINUTE="60",
        )
        with loopback_server(sandbox_command(port), env, port, "sandbox"):
            yield

    @contextmanager
    def _dashboard(
        self, port: int, sandbox_url: str, workdir: Path, password: str, threads: int
    ) -> Iterator[None]:
        # The dashboard talks to the sandbox server over HTTP, as to Segment: live mode, with
        # accounts of its own (the demo accounts exist only in sandbox mode).
        env = benchmark_env(
            DATABASE_URL=f"sqlite:///{workdir / 'dashboard.sqlite3'}",
            SEGMENT_MODE="live",
            SEGMENT_API_TOKEN=settings.SANDBOX_API_TOKEN,
            SEGMENT_API_URL=f"{sandbox_url}/sandbox/api",
            BENCHMARK_PASSWORD=password,
        )
        for step in (["migrate", "--no-input"], ["shell", "--no-imports", "-c", BENCHMARK_ACCOUNTS]):
            subprocess.run(  # noqa: S603 - our own manage.py, fixed arguments
                [sys.executable, "manage.py", *step], env=env, check=True, capture_output=True
            )
        command = [
            sys.executable, "-m", "gunicorn", "dashboard.wsgi:application",
            "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
            "--workers", "1", "--threads", str(threads), "--timeout", "120",
        ]  # fmt: skip
        with loopback_server(command, env, port, "dashboard"):
            yield


# The accounts the flood signs in with, made in the benchmark's own dashboard database.
BENCHMARK_ACCOUNTS = """
import os
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from groups_app import roles
for username, role in (("helpdesk", roles.HELP_DESK), ("viewer", roles.VIEWER)):
    user = get_user_model().objects.create_user(
        username, f"{username}@group-admin.example", os.environ["BENCHMARK_PASSWORD"]
    )
    user.groups.add(Group.objects.get(name=role))
"""


def _signed_in(base: str, username: str, password: str) -> requests.Session:
    session = requests.Session()
    login = session.get(f"{base}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    session.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=30,
    )
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    session.headers["Referer"] = f"{base}/"
    return session


def _flood(base: str, group_id: str, password: str, writers: int, seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {"healthz": [], "group page": [], "member additions": [], "statuses": Counter()}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def write(number: int) -> None:
        session = _signed_in(base, "helpdesk", password)
        for i in range(MAX_WRITES_PER_THREAD):
            if time.monotonic() > stop_at:
                return
            started = time.perf_counter()
            response = session.post(
                f"{base}/groups/{group_id}/members/add/",
                data={"emails": f"bench-{number}-{i}-{secrets.token_hex(3)}@partner.example"},
                headers={"HX-Request": "true", "HX-Target": "add-members-form"},
                timeout=60,
            )
            with lock:
                results["member additions"].append(time.perf_counter() - started)
                results["statuses"][response.status_code] += 1

    def probe() -> None:
        session = _signed_in(base, "viewer", password)
        while time.monotonic() < stop_at:
            for name, url, client in (
                ("healthz", f"{base}/healthz", requests),
                ("group page", f"{base}/groups/{group_id}/", session),
            ):
                started = time.perf_counter()
                client.get(url, timeout=60)
                with lock:
                    results[name].append(time.perf_counter() - started)
            time.sleep(0.2)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    threads.append(threading.Thread(target=probe))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _percentile(samples: list[float], percent: int) -> float:
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[percent - 1]
