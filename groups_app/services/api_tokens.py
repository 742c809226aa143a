"""Personal API tokens: create, revoke, and find the account a bearer token acts for.

A token is 32 random bytes shown once; only its SHA-256 is stored (a slow password hash buys
nothing for a secret of that strength, and every API call looks one up). Its account acts
through it as a `TokenAccount`: the account's role, narrowed to the token's scope. Creating and
revoking are audited; every change made through a token is audited "via API token <name>".
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from groups_app.models import ApiToken, AuditEntry, TokenAccount
from groups_app.services.audit import actor_name, audited
from groups_app.services.audit_details import details_for
from groups_app.services.errors import InvalidInput, NotAllowed

Action = AuditEntry.Action
Scope = ApiToken.Scope

TOKEN_PREFIX = "gat_"  # noqa: S105 - a marker that tells our tokens apart, not a secret
# Longest bearer value looked at: anything longer is not one of ours (and is not hashed).
MAX_TOKEN_LENGTH = 100
MAX_EXPIRY_DAYS = 366
# last_used_at is written at most this often per token, not on every call.
TOUCH_EVERY = timedelta(minutes=1)
_RATE = "api:rate:{token}:{window}"


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # shown once; never stored


class RateLimitExceeded(Exception):
    """The token made API_RATE_LIMIT_PER_MINUTE calls this minute; `retry_after` seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many calls with this token; try again in {retry_after} seconds.")
        self.message = str(self)
        self.retry_after = retry_after


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def checked_token_fields(*, name: str, scope: str, expires_days: int | None) -> tuple[str, str]:
    """Raises InvalidInput (fields `name`, `scope`, `expires_days`)."""
    errors = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = "Give the token a name (what uses it)."
    elif len(name) > 100 or not name.isprintable():
        errors["name"] = "At most 100 printable characters."
    if scope not in Scope.values:
        errors["scope"] = f"Choose one of: {', '.join(Scope.values)}."
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRY_DAYS:
        errors["expires_days"] = f"Between 1 and {MAX_EXPIRY_DAYS} days, or none."
    if errors:
        raise InvalidInput(" ".join(errors.values()), errors)
    return name, scope


def api_token_create(
    *, actor: Any, user: Any, name: str, scope: str, expires_days: int | None = None
) -> NewToken:
    """Create a token for `user` (one's own; an Administrator's command may name another account).

    Raises:
        InvalidInput: a bad name, scope or expiry, or a live token of that name exists.
        NotAllowed: creating a token for someone else's account from a page.
    """
    name, scope = checked_token_fields(name=name, scope=scope, expires_days=expires_days)
    expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with audited(
        actor=actor,
        action=Action.API_TOKEN_CREATE,
        summary=f"{actor_name(actor)} created the API token “{name}” ({scope}) for {user.get_username()}",
        details=details_for(
            Action.API_TOKEN_CREATE,
            name=name,
            scope=scope,
            expires_at=expires_at.isoformat() if expires_at else "never",
            prefix=secret[:12],
        ),
    ):
        if getattr(actor, "pk", None) is not None and actor.pk != user.pk:
            raise NotAllowed("You can only create API tokens for your own account.")
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user,
                    name=name,
                    scope=scope,
                    prefix=secret[:12],
                    digest=token_digest(secret),
                    expires_at=expires_at,
                )
        except IntegrityError:
            message = "You already have a live token of that name; revoke it or choose another name."
            raise InvalidInput(message, {"name": message}) from None
    return NewToken(token, secret)


def api_token_revoke(*, actor: Any, token_id: int) -> ApiToken:
    """Revoke one of the actor's own tokens (at once: the next call with it gets 401).

    Raises:
        NotAllowed: no live token of the actor's with that id.
    """
    token = ApiToken.objects.filter(pk=token_id, user_id=actor.pk, revoked_at__isnull=True).first()
    if token is None:
        raise NotAllowed("No such live token of yours.")
    with audited(
        actor=actor,
        action=Action.API_TOKEN_REVOKE,
        summary=f"{actor_name(actor)} revoked the API token “{token.name}”",
        details=details_for(Action.API_TOKEN_REVOKE, name=token.name, prefix=token.prefix),
    ):
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db()
    return token


def api_tokens_of(user: Any) -> QuerySet[ApiToken]:
    """A person's tokens, newest first (revoked and expired ones too, marked)."""
    return ApiToken.objects.filter(user_id=user.pk)


def token_account(secret: str) -> TokenAccount | None:
    """The account a bearer token acts for, within its scope; None for an unknown, revoked or
    expired token, or an inactive account."""
    if not secret or len(secret) > MAX_TOKEN_LENGTH or not secret.startswith(TOKEN_PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(digest=token_digest(secret)).first()
    now = timezone.now()
    if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at <= now):
        return None
    if not token.user.is_active:
        return None
    if token.last_used_at is None or token.last_used_at < now - TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    account = TokenAccount.objects.get(pk=token.user_id)
    account.api_token = token
    return account


def token_origin(account: TokenAccount) -> str:
    """How its changes are labelled in the audit log."""
    return f"API token {account.api_token.name}"


def token_rate_limit(account: TokenAccount) -> None:
    """Count one call against the token's allowance for the minute (shared by every process).

    Raises:
        RateLimitExceeded: over API_RATE_LIMIT_PER_MINUTE.
    """
    now = timezone.now()
    window = now.replace(second=0, microsecond=0)
    key = _RATE.format(token=account.api_token.caller_key, window=f"{window:%Y%m%d%H%M}")
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=120)
        count = 1
    if count > settings.API_RATE_LIMIT_PER_MINUTE:
        retry_after = max(1, math.ceil((window + timedelta(minutes=1) - now).total_seconds()))
        raise RateLimitExceeded(retry_after)
