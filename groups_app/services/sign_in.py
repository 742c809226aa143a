"""Sign-in throttling: failures counted per account and per address; a locked one is refused
before any password is checked (so a flood cannot burn the CPU on hashing), and recorded.

Failures are counted against whom Django would authenticate, not against the text typed:
the sign-in forms normalise a username to NFKC (`UsernameField`, as
`AbstractBaseUser.normalize_username` does) before `ModelBackend` looks it up, so `viewer` typed
in full-width letters signs in as `viewer`. Each attempt therefore counts against

- the name: stripped, NFKC-normalised and case-folded, so that every spelling of one name
  shares a counter (whether or not an account has it), and
- the account itself, found the way the authentication backend and the password reset form
  find it, so that a locked account stays locked whatever spelling (or email) is used.

A lockout is in force when any of these, or the address (an IPv6 client's whole /64), has
reached its limit.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import F, QuerySet
from django.utils import timezone

from groups_app.models import SignInFailure
from groups_app.services.audit import address_block

logger = logging.getLogger("groups_app.sign_in")

_COUNT = "signin:failures:{key}"
_LOCKED_RECORDS = "signin:locked-records:{key}:{minute}"
_LOCKED_TALLY = "signin:locked-tally:{key}:{minute}"

# Longer than any username or email: never normalised (as Django's UsernameField does), never looked up.
_LONGEST_NAME = 254


@dataclass(frozen=True)
class Lockout:
    """Why sign-in is refused now, and until when."""

    kind: str  # "account" or "address"
    key: str  # the counter that reached its limit
    until: datetime

    @property
    def retry_after(self) -> int:
        return max(1, int((self.until - timezone.now()).total_seconds()))


@dataclass(frozen=True)
class Counter:
    kind: str
    key: str
    limit: int


def normalized_name(typed: str) -> str:
    """The form of a username (or email) that every spelling of it shares: stripped, NFKC
    (what the sign-in form hands to the backend), case-folded."""
    typed = typed.strip()
    if len(typed) > _LONGEST_NAME:
        return typed.casefold()
    return unicodedata.normalize("NFKC", typed).casefold()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _findable(typed: str) -> str | None:
    """What the backend would look up for this input, or None when no account can match."""
    typed = typed.strip()
    if not typed or len(typed) > _LONGEST_NAME or "\x00" in typed:
        return None  # the form refuses it before authenticating; PostgreSQL refuses NUL in text
    return unicodedata.normalize("NFKC", typed)


def accounts_signing_in_as(username: str) -> list[int]:
    """The account ModelBackend authenticates for this input (`get_by_natural_key` of the
    NFKC form), as a list of ids (empty when there is none)."""
    findable = _findable(username)
    if findable is None:
        return []
    user_model = get_user_model()
    try:
        return [user_model._default_manager.get_by_natural_key(findable).pk]
    except user_model.DoesNotExist:
        return []


def accounts_with_email(email: str) -> list[int]:
    """The accounts a password reset for this email goes to (matched as PasswordResetForm does:
    case-insensitively, then compared NFKC and case-folded)."""
    findable = _findable(email)
    if findable is None or "@" not in findable:
        return []
    user_model = get_user_model()
    field = user_model.get_email_field_name()
    wanted = normalized_name(findable)
    candidates = user_model._default_manager.filter(**{f"{field}__iexact": findable}).values_list("pk", field)
    return [pk for pk, address in candidates if normalized_name(address or "") == wanted]


def _counters(*, name: str, account_ids: list[int], client_ip: str | None) -> list[Counter]:
    per_account = settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT
    counters = [Counter("account", f"user:{pk}", per_account) for pk in account_ids]
    if name.strip():
        counters.append(Counter("account", f"name:{_digest(normalized_name(name))}", per_account))
    if client_ip:
        address = f"address:{address_block(client_ip)}"
        counters.append(Counter("address", address, settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS))
    return counters


def _account_ids(name: str, *, by_email: bool) -> list[int]:
    return accounts_with_email(name) if by_email else accounts_signing_in_as(name)


def sign_in_lockout(*, username: str, client_ip: str | None, by_email: bool = False) -> Lockout | None:
    """The lockout in force for this account (however spelled) or this address, if any.

    `by_email`: the form names the account by its email (a password reset request).
    """
    counters = _counters(
        name=username, account_ids=_account_ids(username, by_email=by_email), client_ip=client_ip
    )
    found = cache.get_many([_COUNT.format(key=c.key) for c in counters])
    for counter in counters:
        failures = found.get(_COUNT.format(key=counter.key))
        if failures is not None and failures[0] >= counter.limit:
            return Lockout(counter.kind, counter.key, failures[1])
    return None


def count_attempt(*, username: str, client_ip: str | None, by_email: bool = False) -> None:
    """Count an attempt that the limits apply to (a rejected sign-in, a password reset request)
    against the name, the account it reaches and the address."""
    window = settings.SIGN_IN_LOCKOUT_SECONDS
    until = timezone.now() + timedelta(seconds=window)
    account_ids = _account_ids(username, by_email=by_email)
    for counter in _counters(name=username, account_ids=account_ids, client_ip=client_ip):
        count_key = _COUNT.format(key=counter.key)
        count, _ = cache.get(count_key) or (0, until)
        # Each attempt extends the window: a slow, steady guesser stays locked out.
        cache.set(count_key, (count + 1, until), timeout=window)


def _printable(text: str, length: int) -> str:
    """As typed, for the record, without the NUL that PostgreSQL refuses in text."""
    return text.replace("\x00", "\ufffd")[:length]


def sign_in_failed(*, username: str, client_ip: str | None, user_agent: str = "", path: str = "") -> None:
    """Count a rejected sign-in against the account and the address, and record it."""
    count_attempt(username=username, client_ip=client_ip)
    SignInFailure.objects.create(
        username=_printable(username, 254),
        client_ip=client_ip,
        user_agent=_printable(user_agent, 300),
        path=_printable(path, 200),
        reason=SignInFailure.Reason.REJECTED,
    )
    logger.warning("Sign-in rejected for %r from %s", username[:254], client_ip or "?")


def sign_in_refused_while_locked(
    lockout: Lockout, *, username: str, client_ip: str | None, user_agent: str = "", path: str = ""
) -> None:
    """Record a refusal during a lockout. The first REFUSED_ATTEMPTS_PER_MINUTE of a minute (per
    locked account or address) each get a row; the rest of that minute are counted in one."""
    logger.warning(
        "Sign-in refused for %r from %s: %s locked", username[:254], client_ip or "?", lockout.kind
    )
    now = timezone.now()
    minute = f"{now:%Y%m%d%H%M}"
    limit = settings.REFUSED_ATTEMPTS_PER_MINUTE
    fields = {
        "username": _printable(username, 254),
        "client_ip": client_ip,
        "user_agent": _printable(user_agent, 300),
        "path": _printable(path, 200),
        "reason": SignInFailure.Reason.LOCKED,
        "last_at": now,
    }
    detail = f"too many failures for this {lockout.kind}; refused until {lockout.until:%H:%M:%S %Z}"
    if _count_in_minute(_LOCKED_RECORDS.format(key=lockout.key, minute=minute)) <= limit:
        SignInFailure.objects.create(**fields, detail=detail)
        return
    tally_key = _LOCKED_TALLY.format(key=lockout.key, minute=minute)
    tally_id = cache.get(tally_key)
    if tally_id is not None:
        # The row keeps the first attempt's name and address; the count and time move on.
        SignInFailure.objects.filter(pk=tally_id).update(attempts=F("attempts") + 1, last_at=now)
        return
    detail = f"{detail}; more than {limit} in this minute, counted here"
    tally = SignInFailure.objects.create(**fields, detail=detail[:300])
    # Another process may have opened this minute's row at the same moment: both then count.
    cache.add(tally_key, tally.pk, timeout=120)


def _count_in_minute(key: str) -> int:
    """This attempt's number in its minute, counted in the cache every process shares."""
    cache.add(key, 0, timeout=120)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=120)
        return 1


def sign_in_succeeded(*, username: str) -> None:
    """A successful sign-in clears the account's counts, under every spelling (not the address's:
    it may be shared)."""
    account_ids = accounts_signing_in_as(username)
    keys = [
        _COUNT.format(key=c.key) for c in _counters(name=username, account_ids=account_ids, client_ip=None)
    ]
    cache.delete_many(keys)


def sign_in_failures(*, days: int = 30, reason: str = "") -> QuerySet[SignInFailure]:
    """Recent refused sign-ins, newest first (for Administrators); optionally of one reason."""
    failures = SignInFailure.objects.filter(at__gte=timezone.now() - timedelta(days=days))
    return failures.filter(reason=reason) if reason else failures
