"""Notification mails: what people typed reaches mailboxes on one line in subjects, bounded in bodies."""

from datetime import date

import pytest
from django.core import mail

from groups_app.models import AccessRequest, Review
from groups_app.services.notifications import (
    BODY_TEXT_CHARS,
    SUBJECT_CHARS,
    bounded,
    notify_decision,
    notify_new_requests,
    notify_review_due,
    one_line,
)
from tests.factories import help_desk

pytestmark = pytest.mark.django_db

HOSTILE_NAME = "Data\r\nBcc: everyone@example.com\u2028Eng\x07ineering" + "!" * 150


def access_request(**fields) -> AccessRequest:
    values = {
        "group_id": "g1",
        "group_name": HOSTILE_NAME,
        "email": "vera@example.com",
        "requester_username": "vera",
        "justification": "x" * 50_000,
    }
    return AccessRequest.objects.create(**{**values, **fields})


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("Data\nEng", "Data Eng"),
        ("Data\r\n\r\nEng", "Data Eng"),
        ("Data\u2028Eng\u2029!", "Data Eng !"),
        ("Data\x85Eng\x00\u200b", "Data Eng"),
        ("  Data \t  Eng  ", "Data Eng"),
    ],
)
def test_text_for_a_subject_is_one_line(text, line):
    assert one_line(text) == line


def test_text_for_a_subject_is_cut_with_an_ellipsis():
    assert one_line("a" * 200, 10) == "a" * 9 + "…"


def test_a_new_request_mail_has_a_one_line_quoted_bounded_subject_and_a_bounded_body():
    help_desk(username="hana", email="hana@example.com")

    assert notify_new_requests([access_request()])

    (message,) = mail.outbox
    assert "\n" not in message.subject and "\r" not in message.subject
    assert message.subject.startswith("Access request: “Data Bcc: everyone@example.com Eng")
    assert message.subject.endswith("…”") and len(message.subject) <= SUBJECT_CHARS
    assert message.to == ["hana@example.com"]  # nobody was added through the name
    assert "x" * BODY_TEXT_CHARS in message.body and "x" * (BODY_TEXT_CHARS + 1) not in message.body
    assert "shortened; the whole text is on the page linked below" in message.body
    assert len(message.body) < 3 * BODY_TEXT_CHARS
    assert "\x07" not in message.body


def test_a_decision_mail_bounds_the_reason_and_quotes_the_group():
    request = access_request(status=AccessRequest.Status.DENIED, decision_reason="no\r\n" * 5000)

    assert notify_decision(request, "vera@example.com")

    (message,) = mail.outbox
    assert message.subject.startswith("Access request denied: “Data Bcc:")
    assert "\n" not in message.subject and len(message.subject) <= SUBJECT_CHARS
    assert len(message.body) < 3 * BODY_TEXT_CHARS and "\r" not in message.body


def test_a_review_reminder_subject_is_one_line():
    review = Review.objects.create(
        group_id="g1",
        group_name=HOSTILE_NAME,
        started_by_username="ada",
        expected_count=0,
        snapshot_count=0,
        due_date=date(2026, 12, 24),
    )

    assert notify_review_due(review, "bea@example.com", decided=1, total=2)

    (message,) = mail.outbox
    assert message.subject.startswith("Review due 2026-12-24: “Data Bcc: everyone@example.com Eng")
    assert "\n" not in message.subject and len(message.subject) <= SUBJECT_CHARS


def test_a_body_keeps_the_lines_people_typed_when_short():
    assert bounded("first line\r\nsecond line\x07") == "first line\nsecond line"
