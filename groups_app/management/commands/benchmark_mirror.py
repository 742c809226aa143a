"""Measure the workspace mirror at scale, against a Public API stand-in served over HTTP.

In a database of its own (a temporary SQLite file, or with --database-url a PostgreSQL database
it creates and drops, so the development data is untouched), it seeds a sandbox workspace of
--groups groups and --memberships memberships (one group of --big-group members), serves it
with `runserver` adding --latency-ms to every call, and prints, measured with DEBUG off:

- a full sync: upstream calls (and Σ ⌈items / page size⌉ for comparison), pages, wall time and
  peak memory (traced Python allocations);
- a quick pass with nothing changed, and one after an outside change to one group: calls (the
  listing's, the changed group's, the rotation's share), wall time, peak memory, observed;
- the group list, a group search, the People search, a person's page and a group's page (its
  first paint from the mirror, and its live read): server time (a request through Django's
  handler, templates included) and upstream calls;
- adding one email to the big group: upstream calls on the request path, and time;
- removing one person from 50 groups (People): the page's answer (a job) and its upstream calls,
  then the job as the worker runs it: calls, time and outcomes.

Asserts nothing; prints figures.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import environ
import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models import Count
from django.test import Client, override_settings
from django.utils import timezone
from psycopg import sql as pg_sql
from requests.adapters import HTTPAdapter

from groups_app.management.commands._loopback import benchmark_env, loopback_server, sandbox_command
from groups_app.models import SyncRun
from groups_app.segment import SegmentClient
from groups_app.services.audit import SYSTEM
from groups_app.services.jobs import job_run
from groups_app.services.membership import group_members_add
from groups_app.services.mirror.sync import ReadBudget, sync_changed, sync_workspace
from groups_app.services.people import person_keys
from groups_app.services.segment_client import get_client
from sandbox.models import GroupPermission, Invite, Membership, Role, UserGroup, WorkspaceUser

FIFTY = "fifty@bench.example"
RESOURCE_PATHS = ("/", "/sources", "/warehouses", "/spaces", "/functions")


class Command(BaseCommand):
    help = "Time the mirror's sync, the pages that read it, and a cheap write, at scale (prints figures)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--groups", type=int, default=2000)
        parser.add_argument("--memberships", type=int, default=50_000)
        parser.add_argument("--big-group", type=int, default=5000, help="Members of the largest group.")
        parser.add_argument("--latency-ms", type=int, default=150)
        parser.add_argument("--reads-per-second", type=int, default=100, help="The sync's read budget.")
        parser.add_argument(
            "--concurrency", type=int, default=16, help="Listings the sync reads side by side."
        )
        parser.add_argument("--runs", type=int, default=5)
        parser.add_argument("--port", type=int, default=8767)
        parser.add_argument(
            "--database-url",
            default="",
            help="A PostgreSQL database to run in (postgres://…/name), created for the run and "
            "dropped after it; it must not exist. By default a temporary SQLite file.",
        )
        parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)

    def handle(self, *args: Any, inside: bool, database_url: str, **options: Any) -> None:
        if inside:
            return Inside(self.stdout, **options).run()
        with scratch_database(database_url) as url:
            # A token of its own: the in-process sandbox refuses the public default with DEBUG off.
            env = benchmark_env(
                DATABASE_URL=url, SEGMENT_API_TOKEN="", SANDBOX_API_TOKEN=secrets.token_urlsafe()
            )
            env.pop("REDIS_URL", None)
            env.pop("CACHE_URL", None)
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, check=True)
            inner = [sys.executable, "manage.py", "benchmark_mirror", "--inside"]
            for name in (
                "groups",
                "memberships",
                "big_group",
                "latency_ms",
                "reads_per_second",
                "concurrency",
            ):
                inner += [f"--{name.replace('_', '-')}", str(options[name])]
            inner += ["--runs", str(options["runs"]), "--port", str(options["port"])]
            finished = subprocess.run(inner, env=env)  # noqa: S603
            if finished.returncode:
                raise CommandError("The mirror benchmark failed.")
        return None


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """The URL of a database for one run, gone afterwards: a temporary SQLite file, or the
    PostgreSQL database `url` names, created for the run and dropped after it (one that exists
    already is refused, never emptied)."""
    if not url:
        with tempfile.TemporaryDirectory(prefix="group-admin-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        return
    config = environ.Env.db_url_config(url)
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise CommandError("--database-url names a PostgreSQL database (postgres://…/name).")
    name = config["NAME"]
    server = {
        "dbname": "postgres",
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "autocommit": True,
    }
    try:
        with psycopg.connect(**server) as admin:
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                raise CommandError(
                    f"The database {name} exists. The benchmark creates its own and drops it when "
                    "done: name one that does not exist (or drop this one yourself)."
                )
            admin.execute(pg_sql.SQL("CREATE DATABASE {}").format(pg_sql.Identifier(name)))
    except psycopg.Error as exc:
        raise CommandError(f"Could not create the database {name}: {exc}") from exc
    try:
        yield url
    finally:
        with psycopg.connect(**server) as admin:
            admin.execute(
                pg_sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pg_sql.Identifier(name))
            )


class Inside:
    """The measurements, run with the temporary database configured."""

    def __init__(self, stdout, **options: Any) -> None:
        self.stdout = stdout
        self.options = options

    def run(self) -> None:
        logging.getLogger("groups_app.segment").setLevel(logging.WARNING)
        logging.getLogger("groups_app.mirror").setLevel(logging.WARNING)
        o = self.options
        # Measured with DEBUG off, as served: DEBUG keeps every query's text (and on SQLite
        # runs one more query to quote its parameters).
        # Pages are rendered, not their static files: none need collecting for it.
        warnings.filterwarnings("ignore", message="No directory at", module="django.core.handlers.base")
        with override_settings(DEBUG=False):
            started = time.perf_counter()
            big, emails = seed(o["groups"], o["memberships"], o["big_group"])
            self.stdout.write(
                f"Seeded {o['groups']} groups and {o['memberships']} memberships "
                f"(largest group {o['big_group']}) in {time.perf_counter() - started:.1f} s."
            )
            port = o["port"]
            env = benchmark_env(
                SANDBOX_LATENCY_MS=str(o["latency_ms"]),
                SANDBOX_READ_LIMIT_PER_MINUTE="1000000",
            )
            with loopback_server(sandbox_command(port), env, port, "Public API stand-in"):
                client = counting_client(f"http://127.0.0.1:{port}/sandbox/api", o["concurrency"])
                self.stdout.write(f"Stand-in on 127.0.0.1:{port}, {o['latency_ms']} ms added per call.\n")
                self._sync(client)
                self._quick(client)
                self._pages(emails, big)
                self._add(client, big)
                self._person_change(client)

    def _sync(self, client) -> None:

        o = self.options
        settings.MIRROR_SYNC_CONCURRENCY = o["concurrency"]
        client.calls.clear()
        tracemalloc.start()
        began = time.perf_counter()
        run = sync_workspace(trigger="benchmark", client=client, budget=ReadBudget(o["reads_per_second"]))
        wall = time.perf_counter() - began
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if run is None or run.status != SyncRun.Status.SUCCEEDED:
            raise CommandError(f"The sync did not succeed: {run.errors if run else 'already running'}")
        expected = expected_calls(run.page_size)
        names = sum(1 for _, path in client.calls if path in RESOURCE_PATHS)
        self.stdout.write(
            f"full sync: {run.calls} calls ({len(client.calls)} seen by the client; "
            f"Σ⌈items/{run.page_size}⌉ = {expected}, and {names} of resource names), {run.pages} pages, {run.group_count} groups, "
            f"{run.member_count} members, {wall:.1f} s wall, peak {peak / 2**20:.0f} MiB "
            f"({o['concurrency']} side by side, budget {o['reads_per_second']} reads/s)"
        )

    def _quick(self, client) -> None:
        """Quick passes: nothing changed, then one member added to one group outside Group Admin."""
        o = self.options
        budget = ReadBudget(o["reads_per_second"])
        team = UserGroup.objects.get(name="Team 0500") if o["groups"] > 500 else UserGroup.objects.last()
        outsider = WorkspaceUser.objects.create(name="Outside Change", email="outside@bench.example")
        for label, change in (("nothing changed", None), ("one outside change", team)):
            if change is not None:
                Membership.objects.create(group=change, user=outsider)  # as Segment's app would
            client.calls.clear()
            tracemalloc.start()
            began = time.perf_counter()
            run = sync_changed(trigger="benchmark", client=client, budget=budget)
            wall = time.perf_counter() - began
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            listing = sum(1 for _, path in client.calls if path == "/groups")
            changed = sum(
                1
                for _, path in client.calls
                if change is not None and path.startswith(f"/groups/{change.id}/")
            )
            self.stdout.write(
                f"quick pass, {label}: {run.calls} calls = {listing} listing (⌈{run.group_count}/1000⌉ = "
                f"{math.ceil(run.group_count / 1000)}) + {changed} of the changed group + "
                f"{run.calls - listing - changed} for {run.rotated_count} groups of the rotation; "
                f"{run.groups_read} groups read whole, {run.observed_count} observed, {wall:.2f} s wall, "
                f"peak {peak / 2**20:.1f} MiB"
            )

    def _pages(self, emails: list[str], big) -> None:
        # A live read goes to the stand-in over HTTP, with its added latency, as it would go to
        # Segment (not to the in-process sandbox, which has none).
        with override_settings(
            SANDBOX_MODE=False,
            SEGMENT_API_URL=f"http://127.0.0.1:{self.options['port']}/sandbox/api",
            SEGMENT_API_TOKEN=settings.SANDBOX_API_TOKEN,
        ):
            self._time_pages(emails, big)

    def _time_pages(self, emails: list[str], big) -> None:
        client = Client(HTTP_HOST="localhost")
        client.force_login(
            get_user_model().objects.create(
                username="benchmark", email="benchmark@bench.example", is_superuser=True
            )
        )
        upstream = counting(get_client())
        someone = emails[len(emails) // 2]
        # People searches are POSTed and shown at a token URL; a person's page is at their key.
        searched = client.post("/people/", {"q": someone.split("@")[0][:6]})
        figures = [
            ("group list, first page", "/"),
            ("group list, sorted by members", "/?sort=members&dir=desc"),
            ("group search", "/?q=team+1"),
            ("People search", searched["Location"]),
            ("a person's page", f"/people/{person_keys([someone])[someone]}/"),
            ("a group's page, first paint", f"/groups/{big.id}/"),
            ("a group's page, live read", f"/groups/{big.id}/?live=1"),
        ]
        self.stdout.write(f"{'page'.ljust(30)}  median ms     max ms  upstream calls")
        for name, path in figures:
            samples = []
            upstream.calls.clear()
            for _ in range(max(1, self.options["runs"])):
                began = time.perf_counter()
                response = client.get(path)
                samples.append((time.perf_counter() - began) * 1000)
                if response.status_code != 200:
                    raise CommandError(f"{path} answered {response.status_code}")
            self.stdout.write(
                f"{name.ljust(30)}  {statistics.median(samples):9.1f}  {max(samples):9.1f}  "
                f"{len(upstream.calls) / max(1, self.options['runs']):>14.0f}"
            )

    def _add(self, client, big) -> None:

        client.calls.clear()
        began = time.perf_counter()
        result = group_members_add(
            actor=SYSTEM, group_id=big.id, emails=["newcomer@bench.example"], client=client
        )
        took = (time.perf_counter() - began) * 1000
        self.stdout.write(
            f"add one email to a {big.memberships.count() - 1}-member group: {len(client.calls)} upstream calls "
            f"({', '.join(f'{m} {p}' for m, p in client.calls)}), {took:.0f} ms — {result.result.message}"
        )

    def _person_change(self, client) -> None:
        """One person out of 50 groups, as People does it: the page answers with a job (timed,
        with its upstream calls), then the job runs as the worker runs it, within the write
        budget (`JOB_WRITES_PER_MINUTE`), a few changes side by side."""
        groups = list(
            UserGroup.objects.filter(memberships__user__email=FIFTY).values_list("id", flat=True)[:50]
        )
        web = Client(HTTP_HOST="localhost")
        web.force_login(get_user_model().objects.get(username="benchmark"))
        key = person_keys([FIFTY])[FIFTY]
        upstream = counting(get_client())
        began = time.perf_counter()
        response = web.post(
            f"/people/{key}/remove/",
            {"groups": groups, "confirmed": "yes", "submission_key": secrets.token_hex(16)},
        )
        answered = (time.perf_counter() - began) * 1000
        if response.status_code != 302 or "/jobs/" not in response["Location"]:
            raise CommandError(
                f"Removing from {len(groups)} groups answered {response.status_code}, not a job."
            )
        job_id = int(response["Location"].rstrip("/").rsplit("/", 1)[-1])
        self.stdout.write(
            f"remove one person from {len(groups)} groups, the page: {answered:.0f} ms, "
            f"{len(upstream.calls)} upstream calls, answered with {response['Location']}"
        )
        client.calls.clear()
        began = time.perf_counter()
        job = job_run(job_id, client=client)
        took = time.perf_counter() - began
        self.stdout.write(
            f"  the job (JOB_WRITES_PER_MINUTE={settings.JOB_WRITES_PER_MINUTE}, "
            f"JOB_CONCURRENCY={settings.JOB_CONCURRENCY}): {len(client.calls)} upstream calls, {took:.1f} s, "
            f"{job.succeeded_count} removed, {job.not_done_count} not done, {job.get_status_display().lower()}"
        )


def counting(client):
    """Count the calls a client makes (method and path)."""
    client.calls = []
    original = client._request

    def counted(method, path, **kwargs):
        client.calls.append((method, path))
        return original(method, path, **kwargs)

    client._request = counted
    return client


def counting_client(base_url: str, pool: int):

    client = SegmentClient(base_url, settings.SANDBOX_API_TOKEN, timeout=(2, 30), page_size=1000)
    client.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=pool))  # one per reader
    return counting(client)


def expected_calls(page_size: int) -> int:
    """Σ ⌈items / page size⌉ over every listing the sync reads (a listing shown empty by the group's
    member count is not read)."""

    total = math.ceil(Role.objects.count() / page_size) + math.ceil(UserGroup.objects.count() / page_size)
    users = dict(_counts(Membership))
    invites = dict(_counts(Invite))
    for group_id in UserGroup.objects.values_list("id", flat=True):
        total += math.ceil(users.get(group_id, 0) / page_size) + math.ceil(
            invites.get(group_id, 0) / page_size
        )
    return total


def _counts(model):

    return model.objects.values_list("group_id").annotate(n=Count("pk")).order_by()


def seed(groups: int, memberships: int, big_group: int):
    """A large sandbox workspace: the big group first, the rest of the memberships spread evenly;
    one group in ten has a few invites. Returns the big group and some member emails."""

    roles = [
        Role.objects.create(name=name)
        for name in ("Workspace Member", "Source Admin", "Source Read-only", "Workspace Owner")
    ]
    people = max(big_group, min(memberships, 10_000))
    users = WorkspaceUser.objects.bulk_create(
        (WorkspaceUser(name=f"Person {n:05d}", email=f"person{n:05d}@bench.example") for n in range(people)),
        batch_size=2000,
    )
    made = UserGroup.objects.bulk_create(
        (UserGroup(name="Everyone" if n == 0 else f"Team {n:04d}") for n in range(groups)), batch_size=2000
    )
    GroupPermission.objects.bulk_create(
        (
            GroupPermission(group=g, role=roles[n % 3], resources=[{"id": f"src{n}", "type": "SOURCE"}])
            for n, g in enumerate(made)
        ),
        batch_size=2000,
    )
    fifty = WorkspaceUser.objects.create(name="In Fifty Groups", email=FIFTY)
    user_ids = [u.id for u in users]
    rest = max(0, memberships - big_group)
    per_group = rest // max(1, groups - 1)

    def pairs() -> Iterator[tuple[str, str]]:
        yield from ((made[0].id, user_id) for user_id in user_ids[:big_group])
        for n, group in enumerate(made[1:], start=1):
            start = (n * 37) % people
            yield from ((group.id, user_ids[(start + k) % people]) for k in range(per_group))
        yield from ((group.id, fifty.id) for group in made[1:51])

    _insert_memberships(pairs())
    Invite.objects.bulk_create(
        (
            Invite(group=g, email=f"invitee{n}.{k}@bench.example")
            for n, g in enumerate(made)
            if n % 10 == 1
            for k in range(3)
        ),
        batch_size=2000,
    )
    _analyze()
    return made[0], [u.email for u in users[:: max(1, people // 50)]]


def _insert_memberships(pairs: Iterable[tuple[str, str]]) -> None:
    """Memberships by plain INSERTs in large batches (COPY on PostgreSQL), in one transaction:
    a million model instances would take minutes and a gigabyte."""
    table = connection.ops.quote_name(Membership._meta.db_table)  # only the quoted name is formatted in
    sql = f"INSERT INTO {table} (group_id, user_id, created_at) VALUES (%s, %s, %s)"  # noqa: S608
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {table} (group_id, user_id, created_at) FROM STDIN") as copy:
                for group_id, user_id in pairs:
                    copy.write_row((group_id, user_id, now))
            return
        for batch in itertools.batched(pairs, 20_000):
            cursor.executemany(sql, [(group_id, user_id, now) for group_id, user_id in batch])


def _analyze() -> None:
    """Planner statistics for the freshly loaded sandbox, as after any large load."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
