"""Reading lists of emails that people paste (from mail clients, directories, spreadsheets).

Accepted: bare addresses and `Name <address>` entries, display names quoted or not (commas
inside a display name are fine: `Lovelace, Ada <ada@example.com>`), separated by commas,
semicolons, spaces or new lines. An entry that is not an address at all (no @, nothing
between its angle brackets, characters no address has) is reported with the reason, quoted as
it was typed: an entry is never rewritten into another address.

Parsing only splits the text: whether each candidate is a usable address (its syntax, length,
identity, domain) and how many may change at once is decided by the change services
(`services.membership.checked_emails`), for every door alike.

The text is read in one pass from right to left and one from left to right, so the time grows
with its length, whatever it holds (a regular expression trying `Name <address>` at each
entry re-read the rest of the text for every entry, which is quadratic).
"""

from __future__ import annotations

from array import array
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

# A reason per entry is listed for the first ones; the rest are counted.
PROBLEMS_LISTED = 20
# An entry is quoted in its reason up to this many characters.
SHOWN_CHARS = 80
# Characters a display name cannot hold outside quotes; a name ends before them.
NAME_STOPS = frozenset('<>"@;\n')
# Characters an address between angle brackets cannot hold.
ADDRESS_STOPS = frozenset("<>\n")
# Characters no address has (outside a quoted local part, which nobody pastes).
NOT_IN_ADDRESS = frozenset('<>()[]\\,;:" \t')
NOT_FOUND = -1


@dataclass(frozen=True)
class EmailList:
    emails: tuple[str, ...]  # lower-cased, de-duplicated, in the order given
    problems: tuple[str, ...]  # one message per entry that is not an address (the first ones)


def _is_separator(char: str) -> bool:
    return char in ",;" or char.isspace()


def _named_entry_ends(text: str) -> array:
    """For each position, where a `Name <address>` entry starting there ends (NOT_FOUND if none).

    One pass from the end: an entry starting at i ends where the entry starting at the next
    position of its name ends, so each position is decided once. A display name is quoted
    strings (backslash escapes a character other than a new line) and characters other than
    `< > " @ ;` and new lines; the address between `<` and `>` has no `<`, `>` or new line.
    """
    size = len(text)
    # Arrays of machine integers: a few bytes a character, however large the paste.
    # quoted[j]: the position after the closing quote of a quoted string whose text starts at j.
    quoted = array("q", [NOT_FOUND]) * (size + 2)
    # angle[j]: the first position at or after j holding `<`, `>` or a new line (size if none).
    angle = array("q", [size]) * (size + 2)
    ends = array("q", [NOT_FOUND]) * (size + 1)
    for index in range(size - 1, -1, -1):
        char = text[index]
        angle[index] = index if char in ADDRESS_STOPS else angle[index + 1]
        if char == '"':
            quoted[index] = index + 1
        elif char == "\\":
            escapes = index + 1 < size and text[index + 1] != "\n"
            quoted[index] = quoted[index + 2] if escapes else NOT_FOUND
        else:
            quoted[index] = quoted[index + 1]
        if char == "<":
            close = angle[index + 1]
            ends[index] = close + 1 if close < size and text[close] == ">" else NOT_FOUND
        elif char == '"':
            after = quoted[index + 1]
            ends[index] = ends[after] if after != NOT_FOUND else NOT_FOUND
        elif char in NAME_STOPS:
            ends[index] = NOT_FOUND
        else:
            ends[index] = ends[index + 1]
    return ends


def split_entries(text: str) -> list[tuple[str, str]]:
    """The entries of pasted text, as (the entry as typed, the address it holds)."""
    text = text or ""
    size = len(text)
    ends = _named_entry_ends(text)
    entries = []
    position = 0
    while True:
        while position < size and _is_separator(text[position]):
            position += 1
        if position >= size:
            return entries
        end = ends[position]
        if end != NOT_FOUND:
            raw = text[position:end]
            address = raw[raw.rindex("<", 0, len(raw) - 1) + 1 : -1]
        else:
            end = position
            while end < size and not _is_separator(text[end]):
                end += 1
            raw = address = text[position:end]
        entries.append((raw.strip(), address.strip()))
        position = end


def parse_emails(text: str) -> EmailList:
    """Split pasted text into candidate addresses, and a reason for each entry that is not one.

    Whether a candidate is a usable address (syntax, length, identity, domain) is for
    `email_problems`, which the change services run on every address they are given.
    """
    emails: dict[str, None] = {}
    problems: list[str] = []
    unlisted = 0
    for raw, address in split_entries(text):
        problem = shape_problem(address, shown=raw)
        if not problem:
            emails.setdefault(address.lower(), None)
        elif len(problems) < PROBLEMS_LISTED:
            problems.append(problem)
        else:
            unlisted += 1
    if unlisted:
        problems.append(
            f"… and {unlisted} more {'entry' if unlisted == 1 else 'entries'} that are not addresses."
        )
    return EmailList(tuple(emails), tuple(problems))


def _shown(text: str) -> str:
    """An entry as a reason quotes it: as typed, cut if long (a reason never grows with the paste)."""
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def shape_problem(address: str, shown: str | None = None) -> str:
    """Why `address` is not an email address at all (a sentence naming `shown`), or ""."""
    shown = _shown(shown or address)
    if not address:
        return f"{shown} has no address between its angle brackets."
    if "@" not in address:
        return f"{shown} is not an email address (it has no @)."
    if any(char in NOT_IN_ADDRESS for char in address):
        return f"{shown} is not an email address (it has characters an address cannot have)."
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        return f"{shown} is not a valid email address."
    return ""


def address_problem(address: str, shown: str | None = None) -> str:
    """Why `address` is not a usable email address (a sentence naming `shown`), or "" if it is one."""
    shown = _shown(shown or address)
    local, _, domain = address.rpartition("@")
    problem = shape_problem(address, shown)
    if problem:
        return problem
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
