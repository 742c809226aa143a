"""Sign-in throttling: failures counted per account and per address; a locked one is refused
before any password is checked (so a flood cannot burn the CPU on hashing), and recorded."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from groups_app.models import SignInFailure

logger = logging.getLogger("groups_app.sign_in")

_COUNT = "signin:failures:{kind}:{key}"
_NOTED = "signin:locked-noted:{kind}:{key}"


@dataclass(frozen=True)
class Lockout:
    """Why sign-in is refused now, and until when."""

    kind: str  # "account" or "address"
    until: datetime

    @property
    def retry_after(self) -> int:
        return max(1, int((self.until - timezone.now()).total_seconds()))


def _account_key(username: str) -> str:
    return hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]


def _limits(username: str, client_ip: str | None) -> list[tuple[str, str, int]]:
    limits = []
    if username.strip():
        limits.append(("account", _account_key(username), settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT))
    if client_ip:
        limits.append(("address", client_ip, settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS))
    return limits


def sign_in_lockout(*, username: str, client_ip: str | None) -> Lockout | None:
    """The lockout in force for this account or this address, if any."""
    for kind, key, limit in _limits(username, client_ip):
        failures = cache.get(_COUNT.format(kind=kind, key=key))
        if failures is not None and failures[0] >= limit:
            return Lockout(kind, failures[1])
    return None


def count_attempt(*, username: str, client_ip: str | None) -> None:
    """Count an attempt that the limits apply to (a rejected sign-in, a password reset request)."""
    window = settings.SIGN_IN_LOCKOUT_SECONDS
    until = timezone.now() + timedelta(seconds=window)
    for kind, key, _ in _limits(username, client_ip):
        count_key = _COUNT.format(kind=kind, key=key)
        count, _ = cache.get(count_key) or (0, until)
        # Each attempt extends the window: a slow, steady guesser stays locked out.
        cache.set(count_key, (count + 1, until), timeout=window)


def sign_in_failed(*, username: str, client_ip: str | None, user_agent: str = "", path: str = "") -> None:
    """Count a rejected sign-in against the account and the address, and record it."""
    count_attempt(username=username, client_ip=client_ip)
    SignInFailure.objects.create(
        username=username[:254],
        client_ip=client_ip,
        user_agent=user_agent[:300],
        path=path[:200],
        reason=SignInFailure.Reason.REJECTED,
    )
    logger.warning("Sign-in rejected for %r from %s", username[:254], client_ip or "?")


def sign_in_refused_while_locked(
    lockout: Lockout, *, username: str, client_ip: str | None, user_agent: str = "", path: str = ""
) -> None:
    """Record a refusal during a lockout: once per lockout, so a flood does not fill the table."""
    key = _account_key(username) if lockout.kind == "account" else client_ip
    if cache.add(_NOTED.format(kind=lockout.kind, key=key), True, timeout=lockout.retry_after):
        SignInFailure.objects.create(
            username=username[:254],
            client_ip=client_ip,
            user_agent=user_agent[:300],
            path=path[:200],
            reason=SignInFailure.Reason.LOCKED,
            detail=f"too many failures for this {lockout.kind}; refused until {lockout.until:%H:%M:%S %Z}",
        )
    logger.warning(
        "Sign-in refused for %r from %s: %s locked", username[:254], client_ip or "?", lockout.kind
    )


def sign_in_succeeded(*, username: str) -> None:
    """A successful sign-in clears the account's count (not the address's: it may be shared)."""
    cache.delete(_COUNT.format(kind="account", key=_account_key(username)))


def sign_in_failures(*, days: int = 30) -> QuerySet[SignInFailure]:
    """Recent refused sign-ins, newest first (for Administrators)."""
    return SignInFailure.objects.filter(at__gte=timezone.now() - timedelta(days=days))
