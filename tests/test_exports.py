"""CSV exports: chunked streaming, spreadsheet-safe cells, and the cap on exports in flight."""

import csv
import io
from contextlib import contextmanager

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import Client
from django.urls import reverse

from groups_app.models import AuditEntry, Review
from groups_app.services.exports import (
    CHUNK_CHARS,
    ExportsBusy,
    csv_chunks,
    take_export_slot,
    within_export_slot,
)
from tests.factories import viewer


def test_rows_are_sent_in_bounded_chunks_that_join_into_the_whole_file():
    rows = [(f"person{n}@example.com", "=SUM(A1)", n) for n in range(5000)]

    chunks = list(csv_chunks(("email", "formula", "number"), rows))

    assert len(chunks) > 1
    longest_line = max(len(chunk.splitlines()[-1]) for chunk in chunks) + 2
    assert all(len(chunk) < CHUNK_CHARS + longest_line for chunk in chunks)
    parsed = list(csv.reader(io.StringIO("".join(chunks))))
    assert parsed[0] == ["email", "formula", "number"]
    assert len(parsed) == 5001
    assert parsed[4242] == ["person4241@example.com", "'=SUM(A1)", "4241"]


def test_an_empty_export_is_its_header():
    assert "".join(csv_chunks(("a", "b"), [])) == "a,b\r\n"


@contextmanager
def database_kept_open():
    """Closing a response ends its request, which closes the database connection; the test's
    transaction lives on it (Django's test client does the same around its own closes)."""
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_finished.connect(close_old_connections)


@pytest.fixture
def one_export_at_a_time(settings):
    settings.EXPORT_CONCURRENCY = 1


def signed_in(username):
    client = Client()
    client.force_login(viewer(username=username))
    return client


def test_a_second_export_while_one_streams_gets_a_page_asking_to_retry(viewer_client, one_export_at_a_time):
    AuditEntry.objects.create(actor_username="ada", action="group.create", summary="made G")
    first = viewer_client.get(reverse("groups:audit-export"))

    second = signed_in("otto").get(reverse("groups:audit-export"), {"actor": "ada"})

    assert first.status_code == 200
    assert second.status_code == 429
    assert second["Retry-After"] == "30"
    page = second.content.decode()
    assert "Other exports are running" in page
    assert "Try again in 30 seconds" in page
    assert 'href="/audit/export.csv?actor=ada"' in page

    assert "made G" in b"".join(first.streaming_content).decode()
    third = signed_in("otto").get(reverse("groups:audit-export"))
    assert third.status_code == 200


def test_one_account_runs_one_export_at_a_time_and_others_still_can(viewer_client, settings):
    settings.EXPORT_CONCURRENCY = 3
    first = viewer_client.get(reverse("groups:audit-export"))

    second = viewer_client.get(reverse("groups:audit-export"))
    someone_else = signed_in("otto").get(reverse("groups:audit-export"))

    assert first.status_code == 200 and someone_else.status_code == 200
    assert second.status_code == 429 and second["Retry-After"] == "30"
    page = second.content.decode()
    assert "Your export is still running" in page
    assert "one export at a time per account" in page
    b"".join(first.streaming_content)  # the first download ends: the account may export again
    assert viewer_client.get(reverse("groups:audit-export")).status_code == 200


def test_an_account_refused_for_a_full_server_keeps_no_claim(one_export_at_a_time):
    take_export_slot("1")

    with pytest.raises(ExportsBusy) as busy:
        take_export_slot("2")

    assert not busy.value.is_own
    with pytest.raises(ExportsBusy) as own:
        take_export_slot("1")
    assert own.value.is_own
    assert "one export at a time per account" in own.value.message


def test_a_download_abandoned_before_its_first_byte_gives_its_slot_back(viewer_client, one_export_at_a_time):
    abandoned = viewer_client.get(reverse("groups:audit-export"))
    with database_kept_open():
        abandoned.close()

    take_export_slot()
    with pytest.raises(ExportsBusy):
        take_export_slot()


def test_a_download_that_fails_midway_gives_its_slots_back(one_export_at_a_time):
    def failing():
        yield "header\r\n"
        raise RuntimeError("database went away")

    stream = within_export_slot(failing(), owner="7")
    assert next(stream) == "header\r\n"
    with pytest.raises(RuntimeError):
        next(stream)

    take_export_slot("7")


def test_the_review_export_shares_the_cap(viewer_client, one_export_at_a_time):
    review = Review.objects.create(
        group_id="g1", group_name="G", started_by_username="ada", expected_count=0, snapshot_count=0
    )
    held = viewer_client.get(reverse("groups:audit-export"))
    otto = signed_in("otto")

    busy = otto.get(reverse("groups:review-export", args=[review.pk]))

    assert busy.status_code == 429
    with database_kept_open():
        held.close()
    assert otto.get(reverse("groups:review-export", args=[review.pk])).status_code == 200


def test_an_id_from_upstream_cannot_break_out_of_the_download_filename(viewer_client):
    review = Review.objects.create(
        group_id='g1";\r\nSet-Cookie: x=1',
        group_name="G",
        started_by_username="ada",
        expected_count=0,
        snapshot_count=0,
    )

    response = viewer_client.get(reverse("groups:review-export", args=[review.pk]))

    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        f'attachment; filename="review-{review.pk}-g1____Set-Cookie__x_1.csv"'
    )
    assert not response.has_header("Set-Cookie") or "x=1" not in response["Set-Cookie"]
