"""Parsing and checking lists of emails pasted by people (from mail clients, spreadsheets…)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

SEPARATORS = re.compile(r"[\s,;]+")
# "Ada Lovelace <ada@example.com>" as copied from a mail client: keep the address.
NAMED_ADDRESS = re.compile(r"[^<>,;\n]*<([^<>]+)>")


def split_emails(text: str) -> list[str]:
    """Split pasted text on commas, semicolons, spaces and new lines; trim, lower-case, de-duplicate."""
    text = NAMED_ADDRESS.sub(r"\1", text or "")
    seen: dict[str, None] = {}
    for part in SEPARATORS.split(text):
        cleaned = part.strip().strip("\"'").lower()
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)


def email_problems(emails: Iterable[str]) -> list[str]:
    """One message per unusable email: not an address, or outside ALLOWED_EMAIL_DOMAINS."""
    allowed = {domain.lower().lstrip("@") for domain in settings.ALLOWED_EMAIL_DOMAINS}
    problems = []
    for email in emails:
        try:
            validate_email(email)
        except ValidationError:
            problems.append(f"{email} is not a valid email address.")
            continue
        domain = email.rsplit("@", 1)[1]
        if allowed and domain not in allowed:
            problems.append(f"{email} is outside the allowed domains ({', '.join(sorted(allowed))}).")
    return problems
