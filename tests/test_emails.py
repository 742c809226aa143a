"""Reading pasted email lists: what people paste from mail clients is accepted, nothing is rewritten."""

import pytest

from groups_app.emails import email_problems, parse_emails


@pytest.mark.parametrize(
    ("text", "emails"),
    [
        ("Lovelace, Ada <ada@example.com>", ("ada@example.com",)),
        ('"Hopper, Grace" <grace@navy.example>; bob@x.org', ("grace@navy.example", "bob@x.org")),
        ("Ada Lovelace <Ada@Example.com>, Bob <bob@x.org>", ("ada@example.com", "bob@x.org")),
        (
            "a@x.org\nb@x.org;c@x.org  d@x.org,\t e@x.org",
            ("a@x.org", "b@x.org", "c@x.org", "d@x.org", "e@x.org"),
        ),
        ("a@x.org, A@X.ORG", ("a@x.org",)),
        ('"O\\"Brien" <ob@x.org>', ("ob@x.org",)),
    ],
)
def test_what_mail_clients_and_directories_paste_is_read(text, emails):
    parsed = parse_emails(text)

    assert parsed.emails == emails and parsed.problems == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<script>alert(1)</script>@evil.com", "<script> is not an email address (it has no @)."),
        ("Ada <>", "Ada <> has no address between its angle brackets."),
        ("bad@", "bad@ is not a valid email address."),
        ("lovelace", "lovelace is not an email address (it has no @)."),
        ("a" * 65 + "@x.org", "the part before @ has more than 64 characters"),
        ("a@" + "b" * 250 + ".org", "at most 254 characters"),
    ],
)
def test_what_is_not_an_address_is_refused_with_its_reason_and_never_rewritten(text, problem):
    parsed = parse_emails(text)

    assert any(problem in message for message in parsed.problems), parsed.problems
    assert not any(email.endswith("@evil.com") for email in parsed.emails)


def test_the_script_tag_paste_adds_no_address_at_all():
    assert parse_emails("<script>alert(1)</script>@evil.com").emails == ()


def test_the_allowed_domains_are_checked_without_case(settings):
    settings.ALLOWED_EMAIL_DOMAINS = ["acme.example"]

    assert email_problems(["ada@ACME.example"]) == []
    assert email_problems(["ada@evil.example"]) == [
        "ada@evil.example is outside the allowed domains (acme.example)."
    ]
