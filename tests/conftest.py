from pathlib import Path

import pytest
from django.core.cache import cache

from groups_app.segment import SegmentClient

API = "https://api.segmentapis.com"
TOKEN = "sgp_test_token_7f3a9c"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """With SQLite, the tests use a database file, not memory: Django's live server shares one
    in-memory connection between its request threads, and concurrent htmx requests then collide
    (sqlite3.InterfaceError, "table is locked"). A file gives each thread its own connection."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        database.setdefault("TEST", {})["NAME"] = str(
            Path(__file__).resolve().parents[1] / ".test-db.sqlite3"
        )
        database.setdefault("OPTIONS", {})["timeout"] = 20


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """On PostgreSQL, Django's flush after each transactional test empties the tables with TRUNCATE,
    which the audit log refuses, even to its owner (migration 0016): the flush switches the refusal
    off while it runs, and on again.

    With DATABASE_APP_ROLE set, the suite runs as that role, as the web and worker do: the test
    database is migrated (and the role granted) as DATABASE_URL's user, then every connection
    switches to the app role; only the flush, which the test harness alone runs, is the owner's."""
    from django.conf import settings
    from django.core.management.commands import flush
    from django.db import connection

    if connection.vendor != "postgresql":
        yield
        return
    flush_every_table = flush.Command.handle
    guard = "TRIGGER groups_app_auditentry_no_truncate"

    def flush_as_owner_past_the_guard(self, **options):
        with connection.cursor() as cursor:
            cursor.execute("SET ROLE NONE")
            cursor.execute(f"ALTER TABLE groups_app_auditentry DISABLE {guard}")
        try:
            return flush_every_table(self, **options)
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE groups_app_auditentry ENABLE {guard}")
                cursor.execute("RESET ROLE")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flush.Command, "handle", flush_as_owner_past_the_guard)
        if settings.DATABASE_APP_ROLE:
            options = connection.settings_dict.setdefault("OPTIONS", {})
            patch.setitem(options, "options", f"-c role={settings.DATABASE_APP_ROLE}")
            with django_db_blocker.unblock():
                connection.close()
        yield
    with django_db_blocker.unblock():
        connection.close()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache (cached reads, sandbox rate-limit budget)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _no_queued_tasks():
    """Tasks are recorded by the dummy backend (tests/settings.py); each test starts with none."""
    from django.tasks import task_backends

    backend = task_backends["default"]
    if hasattr(backend, "clear"):
        backend.clear()


@pytest.fixture
def enqueued():
    """The tasks enqueued so far, as (task name, args, kwargs)."""
    from django.tasks import task_backends

    def tasks() -> list[tuple[str, tuple, dict]]:
        return [(r.task.name, tuple(r.args), dict(r.kwargs)) for r in task_backends["default"].results]

    return tasks


@pytest.fixture
def sleeps() -> list[float]:
    """Records the waits the client asked for instead of sleeping."""
    return []


@pytest.fixture
def segment(sleeps) -> SegmentClient:
    """A client of the real API's address, for tests that mock HTTP with `responses`."""
    return SegmentClient(API, TOKEN, max_retries=3, sleep=sleeps.append)


@pytest.fixture
def viewer_client(client, db):
    from tests.factories import viewer

    client.force_login(viewer(username="vera"))
    return client


@pytest.fixture
def help_desk_client(client, db):
    from tests.factories import help_desk

    client.force_login(help_desk(username="hana"))
    return client


@pytest.fixture
def admin_user_client(client, db):
    """Signed in as a member of the Administrator role (not a superuser)."""
    from tests.factories import administrator

    client.force_login(administrator(username="ada"))
    return client


@pytest.fixture
def demo_workspace(db):
    """A seeded sandbox: three groups incl. All Employees (≥450 users, 30 invites), 450 users,
    read into the mirror (as the worker would have done)."""
    from io import StringIO

    from django.core.management import call_command

    from groups_app.services.mirror.sync import sync_workspace
    from sandbox.models import UserGroup

    call_command("seed_sandbox", "--groups", "4", "--users", "450", stdout=StringIO())
    sync_workspace(trigger="test")
    return {group.name: group for group in UserGroup.objects.all()}


@pytest.fixture
def known_sources(db):
    """The sources the tests grant roles on, in the sandbox's listings (a grant on an id the
    workspace's listings do not have is refused unless confirmed)."""
    from sandbox.models import Resource

    ids = ["s", *(f"src{n}" for n in range(10))]
    Resource.objects.bulk_create(
        [Resource(id=resource_id, type="SOURCE", name=f"Source {resource_id}") for resource_id in ids],
        ignore_conflicts=True,
    )
