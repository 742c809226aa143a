"""Signed webhooks and Slack: emitted after commit, delivered by the worker's task, retried."""

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import responses
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from groups_app import tasks
from groups_app.models import Review, WebhookDelivery
from groups_app.services import notifications, webhooks
from groups_app.services.notifications import notify_review_due
from groups_app.services.schedule import jobs
from tests.api.conftest import bearer
from tests.test_worker import DATABASE_QUEUE, ROOT, database_url

pytestmark = pytest.mark.django_db

SECRET = "whsec-test-0f3c"
SLACK = "https://hooks.slack.test/services/T000/B000/secretpart"


class Receiver:
    """A local HTTP receiver that checks each event's signature as a real one would."""

    def __init__(self, status: int = 200):
        self.status = status
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                header = self.headers.get("X-Group-Admin-Signature", "")
                fields = dict(part.split("=", 1) for part in header.split(","))
                expected = hmac.new(
                    SECRET.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256
                ).hexdigest()
                receiver.received.append(
                    {
                        "event": json.loads(body),
                        "verified": hmac.compare_digest(expected, fields.get("v1", "")),
                        "headers": dict(self.headers),
                    }
                )
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/group-admin?key=query-secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    with Receiver() as running:
        settings.WEBHOOK_URLS = [running.url]
        settings.WEBHOOK_SECRET = SECRET
        yield running


@pytest.fixture
def failing_receiver(settings):
    with Receiver(status=500) as running:
        settings.WEBHOOK_URLS = [running.url]
        settings.WEBHOOK_SECRET = SECRET
        yield running


def deliver_enqueued(enqueued):
    """Run the delivery tasks the after-commit hooks enqueued, as the worker would."""
    for name, args, _kwargs in enqueued():
        if name == "deliver_webhook":
            tasks.deliver_webhook.call(*args)


def test_filing_a_request_delivers_a_signed_event_to_the_receiver(
    client, vera, make_token, team, receiver, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        filed = client.post(
            "/api/v1/access-requests",
            {"group_id": team.id, "justification": "Dashboards"},
            content_type="application/json",
            **bearer(make_token(vera, "request")),
        )
    assert filed.status_code == 201
    assert not receiver.received  # nothing is sent inside the request

    deliver_enqueued(enqueued)

    (got,) = receiver.received
    assert got["verified"]
    assert got["headers"]["X-Group-Admin-Event"] == "access_request.filed"
    event = got["event"]
    assert event["type"] == "access_request.filed"
    assert event["data"]["access_request"]["email"] == "vera@example.com"
    assert event["data"]["access_request"]["group_id"] == team.id
    assert event["data"]["url"].endswith(
        reverse("groups:request", args=[event["data"]["access_request"]["id"]])
    )
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert "query-secret" not in delivery.receiver


def test_a_receiver_answering_500_gets_retries_with_back_off_and_the_page_says_so(
    client, ada, vera, make_token, team, failing_receiver, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/api/v1/access-requests",
            {"group_id": team.id, "justification": "Dashboards"},
            content_type="application/json",
            **bearer(make_token(vera, "request")),
        )
    deliver_enqueued(enqueued)

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert delivery.last_error == "The receiver answered HTTP 500"
    assert timedelta(seconds=25) < delivery.next_attempt_at - timezone.now() <= timedelta(seconds=30)
    assert webhooks.webhook_deliveries_due() == []  # not due yet

    client.force_login(ada)
    page = client.get(reverse("groups:webhook-deliveries")).content.decode()
    assert "Failed, will retry" in page
    assert "The receiver answered HTTP 500" in page
    assert "query-secret" not in page

    waits = []
    for _ in range(10):  # bounded: WEBHOOK_MAX_ATTEMPTS ends it
        if delivery.status != "retrying":
            break
        WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        before = timezone.now()
        tasks.deliver_due_webhooks.call()
        delivery.refresh_from_db()
        if delivery.status == "retrying":
            waits.append(round((delivery.next_attempt_at - before).total_seconds() / 30))
    assert waits == [2, 4, 8, 16]  # 1, 2, 4, 8 minutes after the 2nd to 5th failures
    assert (delivery.status, delivery.attempts) == ("failed", 6)
    assert len(failing_receiver.received) == 6
    assert "Gave up" in client.get(reverse("groups:webhook-deliveries")).content.decode()


def test_a_refused_change_sends_nothing(
    client, ada, make_token, team, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/v1/groups/{team.id}/members",
            {"emails": ["x@example.com"]},
            content_type="application/json",
            **bearer(make_token(ada, "read")),
        )

    assert response.status_code == 403
    assert not WebhookDelivery.objects.exists()


def test_a_change_made_announces_its_outcome(
    client, ada, make_token, team, receiver, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/api/v1/groups/{team.id}/members",
            {"emails": ["someone.new@example.com"]},
            content_type="application/json",
            **bearer(make_token(ada, name="deploy")),
        )
    deliver_enqueued(enqueued)

    (got,) = receiver.received
    entry = got["event"]["data"]["audit_entry"]
    assert got["event"]["type"] == "change.completed"
    assert (entry["action"], entry["outcome"], entry["via"]) == (
        "members.add",
        "succeeded",
        "API token deploy",
    )


@responses.activate
def test_slack_gets_a_readable_message_with_a_link_and_its_url_is_never_stored(settings, db):
    settings.SLACK_WEBHOOK_URL = SLACK
    responses.post(SLACK, body="ok")

    (delivery,) = webhooks.webhook_emit(
        "review.due",
        {"review": {"id": 1}},
        text="The review of <Ops> is due",
        link="https://ga.example/reviews/1/",
    )
    webhooks.webhook_deliver(delivery.pk)

    sent = json.loads(responses.calls[0].request.body)
    assert sent == {
        "text": "The review of &lt;Ops&gt; is due <https://ga.example/reviews/1/|Open in Group Admin>"
    }
    assert "X-Group-Admin-Signature" not in responses.calls[0].request.headers
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert delivery.receiver == "Slack"
    assert "secretpart" not in json.dumps(list(WebhookDelivery.objects.values()), default=str)


def test_an_event_of_a_rolled_back_transaction_is_never_sent(
    receiver, enqueued, django_capture_on_commit_callbacks
):
    def emit_then_fail():
        with transaction.atomic():
            webhooks.webhook_emit("review.due", {}, text="due")
            raise RuntimeError("rolled back")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        emit_then_fail()

    assert not WebhookDelivery.objects.exists()
    assert not [name for name, *_ in enqueued() if name == "deliver_webhook"]


def test_a_receiver_removed_from_the_settings_is_not_called(settings, receiver):
    (delivery,) = webhooks.webhook_emit("review.due", {}, text="due")
    settings.WEBHOOK_URLS = []

    webhooks.webhook_deliver(delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert not receiver.received


def test_signature_check_for_receivers():
    body = b'{"type":"review.due"}'
    header = webhooks.sign(body, secret=SECRET, timestamp=1_700_000_000)

    assert webhooks.signature_problem(header, body, secret=SECRET, now=1_700_000_010) == ""
    assert webhooks.signature_problem(header, body + b" ", secret=SECRET, now=1_700_000_010)
    assert webhooks.signature_problem(header, body, secret="other", now=1_700_000_010)
    assert (
        webhooks.signature_problem(header, body, secret=SECRET, now=1_700_001_000)
        == "too old or from the future"
    )
    assert webhooks.signature_problem("v1=abc", body, secret=SECRET) == "no timestamp"


def test_the_retry_job_runs_only_where_webhooks_are_configured(settings):
    assert "deliver_due_webhooks" not in [job.name for job in jobs()]
    settings.SLACK_WEBHOOK_URL = SLACK
    assert "deliver_due_webhooks" in [job.name for job in jobs()]


def test_the_deliveries_page_is_for_administrators(client, vera):
    client.force_login(vera)

    assert client.get(reverse("groups:webhook-deliveries")).status_code == 403


def test_a_real_worker_delivers_the_event_and_records_a_failing_receiver(
    settings, transactional_db, review_due_soon
):
    """The worker process (run_worker, database queue) sends what a request enqueued."""
    settings.TASKS = DATABASE_QUEUE
    with Receiver() as good, Receiver(status=500) as bad:
        settings.WEBHOOK_URLS = [good.url, bad.url]
        settings.WEBHOOK_SECRET = SECRET
        webhooks.review_due(review_due_soon, decided=1, total=3)

        finished = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "run_worker",
                "--batch",
                "--no-reload",
                "--no-startup-delay",
                "--no-schedule",
            ],
            cwd=ROOT,
            env={
                "PATH": os.environ["PATH"],
                "DJANGO_SETTINGS_MODULE": "dashboard.settings",
                "DATABASE_URL": database_url(),
                "SECRET_KEY": "worker-test-key-not-a-secret",
                "DEBUG": "false",
                "SEGMENT_MODE": "sandbox",
                "SANDBOX_ALLOW_WITHOUT_DEBUG": "true",
                "SANDBOX_API_TOKEN": "sandbox-test-token",
                "LOG_LEVEL": "ERROR",
                "WEBHOOK_URLS": f"{good.url},{bad.url}",
                "WEBHOOK_SECRET": SECRET,
            },
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert finished.returncode == 0, finished.stderr
    assert [got["verified"] for got in good.received] == [True]
    assert good.received[0]["event"]["type"] == "review.due"
    assert len(bad.received) == 1
    statuses = dict(WebhookDelivery.objects.values_list("receiver", "status"))
    assert sorted(statuses.values()) == ["delivered", "retrying"]


@pytest.fixture
def review_due_soon(transactional_db):
    return Review.objects.create(
        group_id="g1",
        group_name="Ops",
        started_by_username="ada",
        expected_count=3,
        snapshot_count=3,
        due_date=timezone.localdate(),
    )


def test_a_reminder_retried_after_its_mail_failed_emits_review_due_once(receiver, monkeypatch):
    def mail_down(*args, **kwargs):
        raise ConnectionRefusedError("the mail server is down")

    review = Review.objects.create(
        group_id="g1",
        group_name="Ops",
        started_by_username="ada",
        expected_count=0,
        snapshot_count=0,
        due_date=timezone.localdate() + timedelta(days=1),
    )

    with monkeypatch.context() as patched:
        patched.setattr(notifications, "send_mail", mail_down)
        assert not notify_review_due(review, "bea@example.com", decided=0, total=2)  # the mail failed
    assert notify_review_due(review, "bea@example.com", decided=1, total=2)  # the retry
    review.due_date += timedelta(days=7)
    notify_review_due(review, "bea@example.com", decided=1, total=2)  # a new due date is news

    events = WebhookDelivery.objects.filter(event="review.due").order_by("id")
    assert events.count() == 2
    assert events[0].event_id != events[1].event_id
    assert events[0].payload["id"] == events[0].event_id
