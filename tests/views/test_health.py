"""Readiness (a worker alive, a fresh mirror), /metrics behind its token, and JSON logs."""

import json
import logging
import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from groups_app import tasks
from groups_app.models import AuditEntry, SyncRun, WorkerHeartbeat
from groups_app.request_log import JsonLogFormatter, request_id_var
from groups_app.services.mirror.sync import sync_changed, sync_workspace
from groups_app.services.schedule import worker_heartbeat
from sandbox.models import UserGroup

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests"


@pytest.fixture
def worker_alive(db):
    worker_heartbeat("worker-host:1", started_at=timezone.now())


@pytest.fixture
def synced(db):
    UserGroup.objects.create(name="Data Engineering")
    return sync_workspace(trigger="test")


def test_readyz_fails_with_no_worker_running(client, synced):
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["worker"] == "no heartbeat" and response.json()["mirror"] == "ok"


def test_readyz_fails_when_the_last_worker_heartbeat_is_two_minutes_old(client, synced):
    worker_heartbeat("worker-host:1", started_at=timezone.now())
    WorkerHeartbeat.objects.update(seen_at=timezone.now() - timedelta(seconds=121))

    response = client.get("/readyz")

    assert response.status_code == 503 and response.json()["worker"] == "no heartbeat"


def test_readyz_is_ready_with_a_worker_alive_and_a_fresh_mirror(client, worker_alive, synced):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "cache": "ok",
        "segment": "ok",
        "worker": "ok",
        "mirror": "ok",
    }


def test_readyz_fails_when_the_mirror_was_never_synced(client, worker_alive):
    response = client.get("/readyz")

    assert response.status_code == 503 and response.json()["mirror"] == "never synced"


def test_readyz_fails_when_the_mirror_is_older_than_its_max_age(client, worker_alive, synced, settings):
    settings.MIRROR_MAX_AGE = 360
    SyncRun.objects.update(started_at=timezone.now() - timedelta(seconds=361))

    response = client.get("/readyz")

    assert response.status_code == 503 and response.json()["mirror"] == "stale"


def test_a_quick_pass_keeps_the_mirror_fresh_for_readiness(client, worker_alive, synced, settings):
    SyncRun.objects.update(started_at=timezone.now() - timedelta(hours=1))

    sync_changed(trigger="test")

    assert client.get("/readyz").status_code == 200


def test_metrics_are_off_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("header", ["", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_metrics_refuse_a_scrape_without_the_token(client, settings, header):
    settings.METRICS_TOKEN = TOKEN

    response = client.get("/metrics", headers={"Authorization": header} if header else {})

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"group_admin" not in response.content


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "no-store" in response["Cache-Control"]
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_upstream_calls_by_operation_and_status(client, settings, synced):
    settings.METRICS_TOKEN = TOKEN
    listing = ("group_admin_upstream_calls_total", (("operation", "GET /groups"), ("status", "200")))
    before = scrape(client).get(listing, 0)

    sync_changed(trigger="test")
    sync_changed(trigger="test")

    samples = scrape(client)
    assert samples[listing] == before + 2
    latency = ("group_admin_upstream_call_seconds_count", (("operation", "GET /groups"),))
    assert samples[latency] >= 2


def test_metrics_show_the_mirror_the_worker_the_queue_and_change_outcomes(
    client, settings, synced, worker_alive
):
    settings.METRICS_TOKEN = TOKEN
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
    AuditEntry.objects.create(actor_username="ada", action="members.add", summary="s", status="succeeded")
    AuditEntry.objects.create(actor_username="ada", action="members.add", summary="s", status="unknown")
    tasks.refresh_group.enqueue("groupX")

    samples = scrape(client)

    assert 0 <= samples[("group_admin_mirror_age_seconds", ())] < 60
    assert samples[("group_admin_mirror_last_sync_calls", (("kind", "full"),))] == synced.calls
    assert samples[("group_admin_worker_heartbeat_age_seconds", ())] < 60
    assert samples[("group_admin_workers_alive", ())] == 1
    assert samples[("group_admin_task_queue_depth", ())] == 1
    assert samples[("group_admin_task_queue_oldest_seconds", ())] >= 0
    outcome = (("action", "members.add"), ("status", "succeeded"))
    assert samples[("group_admin_changes_total", outcome)] == 1
    assert samples[("group_admin_changes_total", (("action", "members.add"), ("status", "unknown")))] == 1


def test_json_logs_carry_the_request_id_and_the_exception():
    token = request_id_var.set("req-42")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            record = logging.getLogger("groups_app").makeRecord(
                "groups_app.x", logging.ERROR, __file__, 1, "failed %s", ("once",), sys.exc_info()
            )
        line = json.loads(JsonLogFormatter().format(record))
    finally:
        request_id_var.reset(token)

    assert line["request_id"] == "req-42" and line["message"] == "failed once"
    assert line["level"] == "ERROR" and line["logger"] == "groups_app.x"
    assert "ValueError: boom" in line["exception"]
