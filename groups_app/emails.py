"""Reading lists of emails that people paste (from mail clients, directories, spreadsheets).

Accepted: bare addresses and `Name <address>` entries, display names quoted or not (commas
inside a display name are fine: `Lovelace, Ada <ada@example.com>`), separated by commas,
semicolons, spaces or new lines. Anything else is refused with the reason, quoted as it was
typed: an entry is never rewritten into another address.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from groups_app.rules.identity import identity_problem

# RFC 5321 §4.5.3.1: the longest local part, domain and path an address may have.
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_ADDRESS = 254

ENTRY = re.compile(
    r"""
    (?P<named>                      # Name <address>: the name is quoted, or has no @ < > ; " or new line
        (?:"(?:[^"\\]|\\.)*"|[^<>"@;\n])*?
        <(?P<address>[^<>\n]*)>
    )
    | (?P<bare>[^\s,;]+)            # anything else up to the next separator
    """,
    re.VERBOSE,
)
SEPARATORS = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class EmailList:
    emails: tuple[str, ...]  # lower-cased, de-duplicated, in the order given
    problems: tuple[str, ...]  # one message per entry that is not a usable address


def parse_emails(text: str) -> EmailList:
    """Read pasted text into addresses, and a reason for each entry that is not one."""
    emails: dict[str, None] = {}
    problems: list[str] = []
    position, text = 0, text or ""
    while True:
        separator = SEPARATORS.match(text, position)
        if separator:
            position = separator.end()
        if position >= len(text):
            break
        match = ENTRY.match(text, position)
        position = match.end()
        raw = match.group(0).strip()
        address = match.group("address") if match.group("named") is not None else match.group("bare")
        problem = address_problem(address.strip(), shown=raw)
        if problem:
            problems.append(problem)
        else:
            emails.setdefault(address.strip().lower(), None)
    return EmailList(tuple(emails), tuple(problems))


def address_problem(address: str, shown: str | None = None) -> str:
    """Why `address` is not a usable email address (a sentence naming `shown`), or "" if it is one."""
    shown = shown or address
    local, _, domain = address.rpartition("@")
    if not address:
        return f"{shown} has no address between its angle brackets."
    if "@" not in address:
        return f"{shown} is not an email address (it has no @)."
    if any(char in address for char in '<>()[]\\,;:" \t'):
        return f"{shown} is not an email address (it has characters an address cannot have)."
    if len(local.encode()) > MAX_LOCAL_PART:
        return f"{shown} is too long: the part before @ has more than {MAX_LOCAL_PART} characters."
    if len(domain.encode()) > MAX_DOMAIN or len(address.encode()) > MAX_ADDRESS:
        return f"{shown} is too long for an email address (at most {MAX_ADDRESS} characters)."
    try:
        validate_email(address)
    except ValidationError:
        return f"{shown} is not a valid email address."
    return identity_problem(address)


def email_problems(emails: Iterable[str]) -> list[str]:
    """One message per unusable email: not an address, too long, or outside ALLOWED_EMAIL_DOMAINS."""
    allowed = {domain.lower().lstrip("@") for domain in settings.ALLOWED_EMAIL_DOMAINS}
    problems = []
    for email in emails:
        problem = address_problem(email)
        if problem:
            problems.append(problem)
            continue
        domain = email.rsplit("@", 1)[1].lower()
        if allowed and domain not in allowed:
            problems.append(f"{email} is outside the allowed domains ({', '.join(sorted(allowed))}).")
    return problems
