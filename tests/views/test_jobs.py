"""The job pages: People's changes answer at once with a job page; the page shows progress and
each outcome, polls while the job runs, and is seen and cancelled by its creator and
Administrators only."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from groups_app.models import AuditEntry, Job
from groups_app.segment import SegmentClient
from groups_app.services.audit import record_completed
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.people import person_keys
from groups_app.services.reviews import review_decide, review_start
from sandbox.models import Membership, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk, viewer
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db

EMAIL = "alice@example.com"


@pytest.fixture
def teams(db):
    alice = WorkspaceUser.objects.create(name="Alice Liddell", email=EMAIL)
    found = []
    for n in range(1, 4):
        group = UserGroup.objects.create(name=f"Team {n}")
        Membership.objects.create(group=group, user=alice)
        found.append(group)
    sync_workspace(trigger="test")
    return found


def remove_url():
    return reverse("groups:person-remove", args=[person_keys([EMAIL])[EMAIL]])


def no_upstream_call(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Segment was called in the request")

    monkeypatch.setattr(SegmentClient, "_request", refuse)


def start(client, teams):
    return client.post(remove_url(), {"groups": [g.id for g in teams], "confirmed": "yes"})


def test_removing_answers_with_the_job_page_without_calling_segment(client, teams, monkeypatch):
    client.force_login(help_desk(username="hana"))
    no_upstream_call(monkeypatch)

    response = start(client, teams)

    job = Job.objects.get()
    assert response.status_code == 302 and response.url == reverse("groups:job", args=[job.pk])
    assert job.total == 3 and job.status == "queued" and job.created_by.username == "hana"
    assert not AuditEntry.objects.exists()
    page = client.get(response.url).content.decode()
    assert '<progress id="job-bar-' in page and "0 of 3" in page
    assert 'hx-trigger="every 2s"' in page and 'http-equiv="refresh"' in page
    assert f'action="{reverse("groups:job-cancel", args=[job.pk])}"' in page


def test_an_htmx_removal_is_sent_to_the_job_page(client, teams):
    client.force_login(help_desk(username="hana"))

    response = client.post(
        remove_url(), {"groups": [teams[0].id], "confirmed": "yes"}, headers={"HX-Request": "true"}
    )

    assert response.headers["HX-Redirect"] == reverse("groups:job", args=[Job.objects.get().pk])


def test_bad_input_is_refused_next_to_the_field_and_queues_nothing(client, teams):
    client.force_login(help_desk(username="hana"))

    response = client.post(remove_url(), {"groups": [], "confirmed": "yes"})

    assert response.status_code == 422 and "Choose at least one group." in response.content.decode()
    assert not Job.objects.exists()


def test_the_page_shows_each_outcome_and_stops_polling_when_done(client, teams):
    client.force_login(help_desk(username="hana"))
    url = start(client, teams).url
    run_jobs()

    fragment = client.get(url, headers={"HX-Request": "true", "HX-Target": "job-progress"})
    page = fragment.content.decode()

    assert "<html" not in page and page.strip().startswith('<section id="job-progress"')
    assert "3 of 3" in page and "Removed from Team 1." in page and "Removed from Team 3." in page
    assert "hx-trigger" not in page
    assert '<div id="job-actions" class="section-actions" hx-swap-oob="true">' in page  # Cancel goes away
    for item in Job.objects.get().items.all():
        assert reverse("groups:audit-entry", args=[item.audit_entry_id]) in page
    assert 'http-equiv="refresh"' not in client.get(url).content.decode()


def test_another_account_gets_a_404_and_an_administrator_sees_it(client, teams):
    client.force_login(help_desk(username="hana"))
    url = start(client, teams).url
    job = Job.objects.get()

    other = Client()
    other.force_login(help_desk(username="hugo"))
    assert other.get(url).status_code == 404
    assert other.post(reverse("groups:job-cancel", args=[job.pk])).status_code == 404
    assert f"#{job.pk} " not in other.get(reverse("groups:jobs")).content.decode()
    job.refresh_from_db()
    assert job.status == "queued" and job.cancel_requested_at is None

    admin = Client()
    admin.force_login(administrator(username="ada"))
    assert admin.get(url).status_code == 200
    assert f"#{job.pk} Remove {EMAIL} from 3 groups" in admin.get(reverse("groups:jobs")).content.decode()
    assert client.get(reverse("groups:job", args=[job.pk + 1])).status_code == 404


def test_cancel_needs_csrf_and_is_audited(teams):
    hana = help_desk(username="hana")
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(hana)
    plain = Client()
    plain.force_login(hana)
    url = start(plain, teams).url
    job = Job.objects.get()
    cancel = reverse("groups:job-cancel", args=[job.pk])

    assert csrf_client.post(cancel).status_code == 403
    response = plain.post(cancel, follow=True)

    job.refresh_from_db()
    assert job.status == "cancelled" and set(job.items.values_list("status", flat=True)) == {"cancelled"}
    assert response.redirect_chain[-1][0] == url and "Cancelled" in response.content.decode()
    assert AuditEntry.objects.get().action == "job.cancel"
    assert all(Membership.objects.filter(group=g, user__email=EMAIL).exists() for g in teams)


def test_my_jobs_is_in_the_navigation(client, teams):
    client.force_login(help_desk(username="hana"))
    start(client, teams)

    page = client.get(reverse("groups:jobs")).content.decode()

    assert f'<a href="{reverse("groups:jobs")}" aria-current="page">Jobs</a>' in page
    assert f"Remove {EMAIL} from 3 groups" in page and "0 of 3" in page


def test_completing_a_review_with_many_removals_answers_with_its_job(client, demo_workspace):
    ada = administrator(username="ada")
    client.force_login(ada)
    group = demo_workspace["All Employees"]
    review = review_start(actor=ada, group_id=group.id).review
    items = list(review.items.order_by("pk"))
    review_decide(actor=ada, review_id=review.pk, item_ids=[i.pk for i in items[:120]], decision="remove")
    review_decide(actor=ada, review_id=review.pk, item_ids=[i.pk for i in items[120:]], decision="keep")
    marked = {i.email for i in items[:120]}

    response = client.post(reverse("groups:review-complete", args=[review.pk]), {"submission_key": "a" * 32})

    review.refresh_from_db()
    job = review.removal_job
    assert response.status_code == 302 and response.url == reverse("groups:job", args=[job.pk])
    assert review.status == "completed" and job.total == 3  # batches of 50, 50 and 20
    assert not AuditEntry.objects.filter(action="members.remove").exists()  # nothing sent yet
    page = client.get(response.url).content.decode()
    assert "the worker removes the 120 entries marked remove" in page and "0 of 3" in page

    run_jobs()

    assert "3 of 3" in client.get(response.url).content.decode()
    assert set(review.items.filter(removal="removed").values_list("email", flat=True)) == marked
    assert not group.memberships.filter(user__email__in=marked).exists()
    assert not group.invites.filter(email__in=marked).exists()
    removals = AuditEntry.objects.filter(action="members.remove", status="succeeded", review=review)
    assert removals.count() == 3
    review_page = client.get(reverse("groups:review", args=[review.pk])).content.decode()
    assert f'<a href="{reverse("groups:job", args=[job.pk])}">job #{job.pk}</a>' in review_page


def test_replace_all_with_many_addresses_answers_with_its_job(client, demo_workspace, monkeypatch):
    client.force_login(help_desk(username="hana"))
    group = demo_workspace["All Employees"]
    url = reverse("groups:members-replace", args=[group.id])
    kept = sorted(group.memberships.values_list("user__email", flat=True))[:250]
    wanted = [*kept, *(f"new{n}@acme-corp.example" for n in range(10))]
    preview = client.post(url, {"emails": "\n".join(wanted)}).content.decode()
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', preview).group(1)
    no_upstream_call(monkeypatch)

    response = client.post(
        url,
        {"emails": "\n".join(wanted), "fingerprint": fingerprint, "submission_key": "b" * 32, "confirm": "1"},
    )

    job = Job.objects.get()
    assert response.status_code == 302 and response.url == reverse("groups:job", args=[job.pk])
    assert job.title == "Replace the members of All Employees with 260 addresses" and job.total == 1
    assert not AuditEntry.objects.exists()
    monkeypatch.undo()
    run_jobs()

    item = job.items.get()
    assert item.status == "succeeded" and item.message.startswith("Members replaced: 10 added,")
    assert item.audit_entry.action == "members.replace" and item.audit_entry.status == "succeeded"
    now = set(group.memberships.values_list("user__email", flat=True)) | set(
        group.invites.values_list("email", flat=True)
    )
    assert now == set(wanted)


def test_replace_all_changed_since_its_preview_is_refused_by_the_job(client, demo_workspace):
    client.force_login(help_desk(username="hana"))
    group = demo_workspace["All Employees"]
    url = reverse("groups:members-replace", args=[group.id])
    wanted = sorted(group.memberships.values_list("user__email", flat=True))[:250]

    client.post(
        url,
        {"emails": "\n".join(wanted), "fingerprint": "0" * 16, "submission_key": "c" * 32, "confirm": "1"},
    )
    run_jobs()

    item = Job.objects.get().items.get()
    assert item.status == "refused" and "changed since the preview" in item.message
    assert group.memberships.count() > 250  # nothing sent


def test_a_large_audit_export_is_written_by_the_worker_and_downloaded_from_its_job(client, db, monkeypatch):
    monkeypatch.setattr("groups_app.views.audit.EXPORT_IN_WORKER_OVER", 3)
    vera = viewer(username="vera")
    client.force_login(vera)
    for n in range(5):
        record_completed(
            actor=vera, action=AuditEntry.Action.OWNER_ADD, summary=f"=entry {n}", group_id=f"g{n}"
        )
    export = reverse("groups:audit-export") + "?date_from=2020-01-01&q=entry"

    offer = client.get(export)

    assert offer.status_code == 200 and "Prepare the export" in offer.content.decode()
    assert not Job.objects.exists()
    started = client.post(export)
    job = Job.objects.get()
    assert started.url == reverse("groups:job", args=[job.pk])
    assert (
        job.parameters["filters"]["date_from"] == "2020-01-01"
        and job.parameters["filters"]["text"] == "entry"
    )
    download = reverse("groups:job-download", args=[job.pk])
    assert client.get(download).status_code == 404  # not written yet

    run_jobs()

    page = client.get(started.url).content.decode()
    assert f'href="{download}"' in page and "5 entries written" in page
    response = client.get(download)
    text = b"".join(response.streaming_content).decode()
    assert response["Content-Disposition"].startswith('attachment; filename="group-admin-audit-')
    assert text.count("\n") == 6 and "'=entry 4" in text  # header and five rows, spreadsheet-safe
    other = Client()
    other.force_login(viewer(username="victor"))
    assert other.get(download).status_code == 404
