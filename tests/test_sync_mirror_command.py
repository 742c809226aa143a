"""`manage.py sync_mirror`, as `make run` uses it before the server starts: a transient failure of
a read is retried, a sync that still fails exits 1 with a clear message, and `make run` goes on to
start the worker and the server all the same."""

import os
import shutil
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone

from groups_app.models import MirrorGroup, SyncRun
from groups_app.services.segment_client import get_client
from sandbox.faults import inject_fault
from sandbox.models import UserGroup

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sandbox_groups(db, monkeypatch):
    """Two groups in the sandbox, and a client that does not really sleep between retries."""
    monkeypatch.setattr(get_client(), "_sleep", lambda seconds: None)
    UserGroup.objects.create(name="Data Engineering")
    UserGroup.objects.create(name="Finance")


def remaining_faults(operation: str) -> int:
    planned = cache.get(f"sandbox:fault:{operation}")
    return planned[1] if planned else 0


def test_one_500_on_the_first_read_is_retried_and_the_sync_succeeds(sandbox_groups):
    inject_fault("list_roles", "500", 1)
    out = StringIO()

    call_command("sync_mirror", stdout=out)

    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert f"Whole workspace #{run.pk} succeeded: 2 groups listed" in out.getvalue()
    assert set(MirrorGroup.objects.values_list("name", flat=True)) == {"Data Engineering", "Finance"}


def test_a_read_that_keeps_failing_is_retried_then_the_command_exits_1(sandbox_groups, settings):
    inject_fault("list_user_groups", "500", 10)

    with pytest.raises(CommandError) as caught:
        call_command("sync_mirror", stdout=StringIO())

    assert caught.value.returncode == 1
    assert remaining_faults("list_user_groups") == 10 - (1 + settings.SEGMENT_MAX_RETRIES)
    message = str(caught.value)
    assert "Unavailable: Segment is not responding." in message
    assert "retried up to 3 times (SEGMENT_MAX_RETRIES)" in message
    assert "The mirror keeps its earlier state" in message
    assert SyncRun.objects.get().status == SyncRun.Status.FAILED
    assert not MirrorGroup.objects.exists()


def test_a_sync_already_running_starts_nothing_and_is_no_failure(sandbox_groups):
    call_command("sync_mirror", stdout=StringIO())
    now = timezone.now()
    SyncRun.objects.create(
        kind=SyncRun.Kind.GROUP, group_id="g1", trigger="test", started_at=now, heartbeat_at=now
    )
    out = StringIO()

    call_command("sync_mirror", "--group", "g1", stdout=out)

    assert "running already; nothing started" in out.getvalue()


# -- the Makefile's run target ----------------------------------------------------------------

STUB = """#!/bin/sh
echo "$1 SITE_URL=$SITE_URL" >> "$CALLS"
case "$1" in
  sync_mirror) echo "Sync #1 failed" >&2; exit "$SYNC_EXIT";;
  runserver)  # the worker starts in the background first: wait (boundedly) until it has
    for _ in $(seq 200); do grep -q run_worker "$CALLS" && break; sleep 0.05; done;;
esac
"""


def make_run(tmp_path: Path, sync_exit: int) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`make run` with manage.py replaced by a stub that records its calls (set-up steps skipped)."""
    stub = tmp_path / "manage"
    stub.write_text(STUB)
    stub.chmod(0o755)
    calls = tmp_path / "calls"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "CALLS": str(calls),
        "SYNC_EXIT": str(sync_exit),
    }
    result = subprocess.run(  # noqa: S603 - make with fixed arguments
        [shutil.which("make") or "make", "-s", "-o", "seed", "run", f"MANAGE={stub}", "PORT=8191"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    made = calls.read_text().splitlines() if calls.exists() else []
    return result, made


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_starts_the_worker_and_the_server_after_a_failed_first_sync(tmp_path):
    result, calls = make_run(tmp_path, sync_exit=1)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "The first sync of the mirror failed (see above): starting anyway." in result.stderr
    assert calls[0] == "sync_mirror SITE_URL=http://127.0.0.1:8191"
    assert "runserver SITE_URL=http://127.0.0.1:8191" in calls
    assert "run_worker SITE_URL=http://127.0.0.1:8191" in calls


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_stops_when_the_first_sync_is_interrupted(tmp_path):
    result, calls = make_run(tmp_path, sync_exit=130)  # Ctrl-C

    assert result.returncode != 0
    assert calls == ["sync_mirror SITE_URL=http://127.0.0.1:8191"]
