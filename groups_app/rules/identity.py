"""Canonical identities: the form in which every rule compares people.

Segment, mail servers and identity providers treat many spellings of an address as one
mailbox: ``Ada@Example.com``, ``ada+owner@example.com``, full-width letters or an
internationalised domain in Unicode or in its ``xn--`` form. A rule that compares raw strings
lets any of them pass as "someone else". Here an address becomes one identity:

- NFKC-normalised (full-width and compatibility forms become their plain letters), then
  case-folded;
- the domain as an IDNA A-label (``bücher.example`` → ``xn--bcher-kva.example``);
- the sub-address removed (``+tag``; the separators are `EMAIL_SUBADDRESS_SEPARATORS`).

An address that hides characters (zero-width, soft hyphen, bidi controls: Unicode's format
and control categories) or mixes scripts within one label (Latin with a Cyrillic look-alike)
has no identity: it is refused, with the reason, wherever it is typed.
"""

from __future__ import annotations

import unicodedata

import idna
from django.conf import settings

# Scripts that are written together in one word and so may share a label.
COMPATIBLE_SCRIPTS = (
    frozenset({"CJK", "HIRAGANA", "KATAKANA"}),
    frozenset({"CJK", "HANGUL"}),
)
HIDDEN_CATEGORIES = {"Cf", "Cc", "Co", "Cs", "Cn", "Zl", "Zp"}


class InvalidIdentity(ValueError):
    """The address cannot stand for a person: `reason` says why, in a sentence naming it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _script(char: str) -> str | None:
    """The script of a letter, from its Unicode name; None for what is not a letter."""
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    if name.startswith(("CJK ", "IDEOGRAPHIC")):
        return "CJK"
    return name.split(" ", 1)[0] or None


def _mixes_scripts(label: str) -> bool:
    scripts = {script for script in map(_script, label) if script}
    if len(scripts) <= 1:
        return False
    return not any(scripts <= allowed for allowed in COMPATIBLE_SCRIPTS)


def identity_problem(address: str) -> str:
    """Why `address` cannot be a person's identity (a sentence), or "" when it can."""
    try:
        canonical_identity(address)
    except InvalidIdentity as exc:
        return exc.reason
    return ""


def canonical_identity(address: str) -> str:
    """The identity every rule compares: NFKC, case-folded, IDNA domain, no sub-address.

    Raises:
        InvalidIdentity: hidden characters, mixed scripts in a label, or no usable domain.
    """
    shown = repr(address)[1:-1]  # hidden characters become visible escapes in the message
    for char in address:
        if unicodedata.category(char) in HIDDEN_CATEGORIES:
            raise InvalidIdentity(
                f"{shown} contains a hidden character ({unicodedata.name(char, f'U+{ord(char):04X}').lower()}); "
                "type the address again."
            )
    folded = unicodedata.normalize("NFKC", address).casefold().strip()
    local, at, domain = folded.rpartition("@")
    if not at or not local or not domain:
        raise InvalidIdentity(f"{shown} is not an email address.")
    for label in [local, *domain.split(".")]:
        if _mixes_scripts(label):
            raise InvalidIdentity(
                f"{shown} mixes alphabets in one part (letters that look alike but are not the same); "
                "type the address again."
            )
    try:
        domain = idna.encode(domain, uts46=True, transitional=False).decode("ascii").lower()
    except idna.IDNAError:
        raise InvalidIdentity(f"{shown} has a domain that cannot exist.") from None
    separators = settings.EMAIL_SUBADDRESS_SEPARATORS
    if separators:
        cut = min((i for i in (local.find(s) for s in separators) if i > 0), default=-1)
        if cut > 0:
            local = local[:cut]
    return f"{local}@{domain}"


def same_identity(first: str, second: str) -> bool:
    """Whether two addresses are the same person; an address without identity matches nobody."""
    try:
        return canonical_identity(first) == canonical_identity(second)
    except InvalidIdentity:
        return False
