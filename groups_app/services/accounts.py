"""The dashboard's own accounts: who signs in by single sign-on, role and permission changes,
account changes, password resets — each audited.

Single sign-on identifies a person by the provider's (issuer, subject), stored as an
`ExternalIdentity`; an email never decides which account someone signs in to. A subject's first
sign-in links to an existing account only when that account is a plain one nobody else can use
(no usable password, not staff, not superuser, no role, group or direct permission, active, not
linked yet) and has the same canonical email; otherwise it creates a new account, or refuses
when an account with that canonical email exists but may not be linked.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from groups_app.models import AuditEntry, ExternalIdentity, ExternalSession
from groups_app.roles import ROLE_PERMISSIONS
from groups_app.rules.identity import InvalidIdentity, canonical_identity
from groups_app.services.audit import SYSTEM, actor_name, origin_var, record_completed, record_refused
from groups_app.services.audit_details import details_for

Action = AuditEntry.Action

# Who changes accounts when no person does: the identity provider, at sign-in or at a refresh.
_change_source: contextvars.ContextVar[str] = contextvars.ContextVar("change_source", default="")

PROVIDER = "the identity provider"
ROLE_SOURCE = "the identity provider's groups claim"
ASK_TO_LINK = (
    "An account with this email already exists here and cannot be linked to your sign-in "
    "automatically: ask an Administrator to link your account."
)
# Fields of an account whose changes are audited, with how the audit log names them.
WATCHED_FIELDS = {"email": "email", "is_active": "active", "is_staff": "staff", "is_superuser": "superuser"}
USERNAME_ATTEMPTS = 20
EXTERNAL_SESSION_KEY = "oidc_external_session"  # the browser session's ExternalSession
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


class IdentityRefused(Exception):
    """A single sign-on the dashboard refuses: `message` is for the person, `reason` for the log."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(reason or message)
        self.message = message
        self.reason = reason or message


@dataclass(frozen=True)
class ProviderIdentity:
    """What a verified sign-in asserts: who (issuer, subject), and what the provider says of them."""

    issuer: str
    subject: str
    email: str
    given_name: str = ""
    family_name: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)


@contextmanager
def changes_made_by(source: str) -> Iterator[None]:
    """Attribute the account changes inside the block to `source` (e.g. the identity provider)."""
    token = _change_source.set(source)
    try:
        yield
    finally:
        _change_source.reset(token)


def _audit_actor() -> Any:
    """Who made an account change: the signed-in person of the request, or SYSTEM for the provider;
    None when the change is not the app's to record (a shell, a data migration)."""
    if _change_source.get():
        return SYSTEM
    origin = origin_var.get()
    if origin is None:
        return None
    return origin.user if getattr(origin.user, "is_authenticated", False) else SYSTEM


def _source() -> str:
    return _change_source.get() or "the dashboard's accounts"


def _summary_source() -> str:
    return f" ({_change_source.get()})" if _change_source.get() else ""


def role_changes_audited(
    *, user: Any, roles: list[str], granted: bool, before: Iterable[str] = (), after: Iterable[str] = ()
) -> AuditEntry | None:
    """Record roles (Django groups) granted to or removed from a dashboard account: in the Django
    admin (any web request) or by single sign-on. Changes made outside the app are not recorded."""
    actor = _audit_actor()
    if actor is None:
        return None
    action = Action.ACCOUNT_ROLE_GRANT if granted else Action.ACCOUNT_ROLE_REMOVE
    verb, preposition = ("granted", "to") if granted else ("removed", "from")
    summary = f"{actor_name(actor)} {verb} {', '.join(sorted(roles))} {preposition} {user.get_username()}"
    return record_completed(
        actor=actor,
        action=action,
        summary=summary + _summary_source(),
        details=details_for(
            action,
            account=user.get_username(),
            roles=sorted(roles),
            before=sorted(before),
            after=sorted(after),
            source=_source(),
        ),
    )


def account_permissions_audited(*, user: Any, before: set[str], after: set[str]) -> AuditEntry | None:
    """Record a change of an account's direct permissions (those given outside any role)."""
    actor = _audit_actor()
    if actor is None or before == after:
        return None
    added, removed = sorted(after - before), sorted(before - after)
    parts = [
        f"granted {', '.join(added)}" if added else "",
        f"removed {', '.join(removed)}" if removed else "",
    ]
    return record_completed(
        actor=actor,
        action=Action.ACCOUNT_PERMISSIONS,
        summary=f"{actor_name(actor)} {' and '.join(filter(None, parts))} as direct permissions of "
        f"{user.get_username()}{_summary_source()}",
        details=details_for(
            Action.ACCOUNT_PERMISSIONS,
            account=user.get_username(),
            added=added,
            removed=removed,
            before=sorted(before),
            after=sorted(after),
            source=_source(),
        ),
    )


def role_permissions_audited(*, group: Any, before: set[str], after: set[str]) -> AuditEntry | None:
    """Record a change of the permissions a role (a Django group) carries."""
    actor = _audit_actor()
    if actor is None or before == after:
        return None
    added, removed = sorted(after - before), sorted(before - after)
    parts = [
        f"granted {', '.join(added)}" if added else "",
        f"removed {', '.join(removed)}" if removed else "",
    ]
    return record_completed(
        actor=actor,
        action=Action.ROLE_PERMISSIONS,
        summary=f"{actor_name(actor)} {' and '.join(filter(None, parts))} in the role {group.name}"
        f"{_summary_source()}",
        details=details_for(
            Action.ROLE_PERMISSIONS,
            role=group.name,
            added=added,
            removed=removed,
            before=sorted(before),
            after=sorted(after),
            source=_source(),
        ),
    )


def _describe(values: dict[str, Any]) -> str:
    shown = []
    for name, value in values.items():
        label = WATCHED_FIELDS[name]
        shown.append(f"{label}: {('yes' if value else 'no') if isinstance(value, bool) else value or '—'}")
    return "; ".join(shown)


def account_fields_audited(*, user: Any, before: dict[str, Any], after: dict[str, Any]) -> AuditEntry | None:
    """Record a change of an account's email or its active, staff or superuser flags."""
    actor = _audit_actor()
    changed = [name for name in WATCHED_FIELDS if name in before and before[name] != after.get(name)]
    if actor is None or not changed:
        return None
    old = {name: before[name] for name in changed}
    new = {name: after[name] for name in changed}
    return record_completed(
        actor=actor,
        action=Action.ACCOUNT_CHANGE,
        summary=f"{actor_name(actor)} changed {user.get_username()}: {_describe(old)} → {_describe(new)}"
        f"{_summary_source()}",
        details=details_for(
            Action.ACCOUNT_CHANGE,
            account=user.get_username(),
            before=_describe(old),
            after=_describe(new),
            source=_source(),
        ),
    )


def account_created_audited(*, user: Any) -> AuditEntry | None:
    """Record a new dashboard account (in the Django admin, or at a first single sign-on)."""
    actor = _audit_actor()
    if actor is None:
        return None
    return record_completed(
        actor=actor,
        action=Action.ACCOUNT_CREATE,
        summary=f"{actor_name(actor)} created the account {user.get_username()}{_summary_source()}",
        details=details_for(
            Action.ACCOUNT_CREATE, account=user.get_username(), email=user.email, source=_source()
        ),
    )


def identity_link_audited(*, actor: Any, identity: ExternalIdentity, source: str) -> AuditEntry:
    """Record an identity linked to an account (by an Administrator, or at its first sign-in)."""
    account = identity.user.get_username()
    return record_completed(
        actor=actor,
        action=Action.IDENTITY_LINK,
        summary=f"{actor_name(actor)} linked the subject {identity.subject} to {account} ({source})",
        details=details_for(
            Action.IDENTITY_LINK,
            account=account,
            issuer=identity.issuer,
            subject=identity.subject,
            email=identity.email,
            source=source,
        ),
    )


def identity_unlink_audited(*, actor: Any, identity: ExternalIdentity, source: str) -> AuditEntry:
    """Record an identity unlinked from its account (its single sign-on sessions end with it)."""
    account = identity.user.get_username()
    return record_completed(
        actor=actor,
        action=Action.IDENTITY_UNLINK,
        summary=f"{actor_name(actor)} unlinked the subject {identity.subject} from {account} ({source})",
        details=details_for(
            Action.IDENTITY_UNLINK,
            account=account,
            issuer=identity.issuer,
            subject=identity.subject,
            source=source,
        ),
    )


def password_reset_requested(*, actor: Any, email: str) -> AuditEntry:
    """Record a password reset request (mailed only if an active account has that email)."""
    return record_completed(
        actor=actor,
        action=Action.ACCOUNT_PASSWORD_RESET,
        summary=f"Password reset requested for {email[:254]}",
        details=details_for(Action.ACCOUNT_PASSWORD_RESET, email=email[:254]),
    )


# --- Single sign-on ---------------------------------------------------------------------------


def _printable(value: Any, limit: int) -> str:
    return _UNPRINTABLE.sub("", str(value or ""))[:limit].strip()


def _canonical_or_none(address: str) -> str | None:
    try:
        return canonical_identity(address)
    except InvalidIdentity:
        return None


def accounts_with_identity(canonical: str, *, exclude_pk: int | None = None) -> list[Any]:
    """Accounts whose email, or whose username written as an email, is the same person as
    `canonical`. Canonical forms cannot be queried, so every account with an "@" is read: this
    runs at a subject's first sign-in and when its email changes, not at every request."""
    user_model = get_user_model()
    found = []
    candidates = user_model.objects.filter(email__contains="@") | user_model.objects.filter(
        username__contains="@"
    )
    if exclude_pk is not None:
        candidates = candidates.exclude(pk=exclude_pk)
    for user in candidates.distinct().iterator():
        if canonical in {_canonical_or_none(user.email), _canonical_or_none(user.get_username())}:
            found.append(user)
    return found


def _may_link(user: Any) -> bool:
    """Only a plain account that nobody can use yet may be taken by a sign-in with its email."""
    return (
        user.is_active
        and not user.has_usable_password()
        and not user.is_staff
        and not user.is_superuser
        and not user.groups.exists()
        and not user.user_permissions.exists()
        and not user.external_identities.exists()
    )


def sign_in_by_identity(identity: ProviderIdentity) -> Any:
    """The account `identity` signs in to: its linked account, else a plain account with the same
    canonical email (linked now), else a new one. Roles follow the groups claim; audited.

    Raises:
        IdentityRefused: the email cannot identify anyone, or an account with the same canonical
            email exists and may not be linked (an Administrator must link it).
    """
    linked = ExternalIdentity.objects.select_related("user").filter(
        issuer=identity.issuer, subject=identity.subject
    )
    known = linked.first()
    if known is not None:
        user = known.user
        _update_email(known, identity)
    else:
        user = _first_sign_in(identity)
        known = user.external_identities.get(issuer=identity.issuer, subject=identity.subject)
    ExternalIdentity.objects.filter(pk=known.pk).update(last_sign_in_at=timezone.now())
    sync_roles(user, identity.roles)
    return user


def _first_sign_in(identity: ProviderIdentity) -> Any:
    try:
        canonical = canonical_identity(identity.email)
    except InvalidIdentity as exc:
        raise IdentityRefused(
            f"Your email at the identity provider cannot identify you here: {exc.reason}",
            f"{identity.subject}: {exc.reason}",
        ) from None
    matches = accounts_with_identity(canonical)
    if matches:
        if len(matches) == 1 and _may_link(matches[0]):
            return _link(matches[0], identity, source="first sign-in, same canonical email")
        reason = (
            f"the subject {identity.subject} asserts {identity.email}, the email of "
            f"{', '.join(sorted(user.get_username() for user in matches))}, which may not be linked automatically"
        )
        record_refused(
            actor=SYSTEM,
            action=Action.IDENTITY_LINK,
            summary=f"Refused single sign-on of {identity.subject}: {reason}"[:500],
            reason=reason,
            details=details_for(
                Action.IDENTITY_LINK,
                account=", ".join(sorted(user.get_username() for user in matches)),
                issuer=identity.issuer,
                subject=identity.subject,
                email=identity.email,
                source="first sign-in",
            ),
        )
        raise IdentityRefused(ASK_TO_LINK, reason)
    return _create(identity)


def _link(user: Any, identity: ProviderIdentity, *, source: str) -> Any:
    """Link `identity` to a plain account, checked again under a lock: two subjects signing in at
    once with the same email must not both take it.

    Raises:
        IdentityRefused: the account changed meanwhile and may no longer be linked.
    """
    try:
        with transaction.atomic():
            user = get_user_model().objects.select_for_update().get(pk=user.pk)
            if not _may_link(user):
                raise IdentityRefused(ASK_TO_LINK, f"{user.get_username()} was linked or changed meanwhile")
            linked = ExternalIdentity.objects.create(
                issuer=identity.issuer,
                subject=identity.subject,
                user=user,
                email=identity.email[:254],
                linked_by="first sign-in",
            )
    except IntegrityError:
        # The same subject's first sign-in in another tab won the race: use what it linked.
        return ExternalIdentity.objects.get(issuer=identity.issuer, subject=identity.subject).user
    identity_link_audited(actor=SYSTEM, identity=linked, source=source)
    return user


def _usernames(email: str) -> Iterator[str]:
    base = email.lower()
    yield base[:150]
    for number in range(2, USERNAME_ATTEMPTS + 1):
        suffix = f"-{number}"
        yield base[: 150 - len(suffix)] + suffix


def _create(identity: ProviderIdentity) -> Any:
    """A new account for a subject's first sign-in; a taken username gets a numbered suffix."""
    user_model = get_user_model()
    email = identity.email.strip()
    for username in _usernames(email):
        if user_model.objects.filter(username=username).exists():
            continue
        try:
            with transaction.atomic(), changes_made_by(PROVIDER):
                user = user_model.objects.create_user(
                    username=username,
                    email=email,
                    first_name=identity.given_name[:150],
                    last_name=identity.family_name[:150],
                )
                user.set_unusable_password()
                user.save(update_fields=["password"])
                linked = ExternalIdentity.objects.create(
                    issuer=identity.issuer,
                    subject=identity.subject,
                    user=user,
                    email=email[:254],
                    linked_by="first sign-in",
                )
        except IntegrityError:
            if ExternalIdentity.objects.filter(issuer=identity.issuer, subject=identity.subject).exists():
                return ExternalIdentity.objects.get(issuer=identity.issuer, subject=identity.subject).user
            continue  # the username was taken in the meantime: the next one
        identity_link_audited(actor=SYSTEM, identity=linked, source="first sign-in, new account")
        return user
    raise IdentityRefused(
        "No account name is free for your email here: ask an Administrator to link your account.",
        f"{identity.subject}: {USERNAME_ATTEMPTS} usernames derived from {email} are taken",
    )


def _update_email(known: ExternalIdentity, identity: ProviderIdentity) -> None:
    """Follow a changed email at the provider on the account (never a re-link to another account).
    A new email that is another account's identity, or no identity at all, is not taken."""
    user = known.user
    if identity.email == known.email and identity.email == user.email:
        return
    ExternalIdentity.objects.filter(pk=known.pk).update(email=identity.email[:254])
    canonical = _canonical_or_none(identity.email)
    if canonical is None or canonical == _canonical_or_none(user.email):
        return
    others = accounts_with_identity(canonical, exclude_pk=user.pk)
    if others:
        reason = (
            f"the subject {identity.subject} now asserts {identity.email}, the email of "
            f"{', '.join(sorted(other.get_username() for other in others))}; {user.get_username()} keeps {user.email}"
        )
        record_refused(
            actor=SYSTEM,
            action=Action.ACCOUNT_CHANGE,
            summary=f"Kept the email of {user.get_username()}: {reason}"[:500],
            reason=reason,
            details=details_for(Action.ACCOUNT_CHANGE, account=user.get_username(), source=PROVIDER),
        )
        return
    with changes_made_by(PROVIDER):
        user.email = identity.email[:254]
        user.save(update_fields=["email"])


def sync_roles(user: Any, roles: Iterable[str]) -> None:
    """Give the account exactly the dashboard roles the provider's groups claim maps to (audited
    through the role-change signal); other Django groups are left as they are."""
    wanted = set(roles) & set(ROLE_PERMISSIONS)
    current = set(user.groups.filter(name__in=ROLE_PERMISSIONS).values_list("name", flat=True))
    with changes_made_by(ROLE_SOURCE):
        if wanted - current:
            user.groups.add(*Group.objects.filter(name__in=wanted - current))
        if current - wanted:
            user.groups.remove(*Group.objects.filter(name__in=current - wanted))
    for cache in ("_perm_cache", "_group_perm_cache", "_user_perm_cache"):
        user.__dict__.pop(cache, None)


def roles_from_claim(value: Any) -> frozenset[str]:
    """The dashboard roles a groups claim maps to through OIDC_ROLE_MAP."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        value = []
    claimed = {str(item) for item in value}
    return frozenset(role for claim, role in settings.OIDC_ROLE_MAP.items() if claim in claimed)


def provider_identity(*, issuer: str, claims: dict[str, Any]) -> ProviderIdentity:
    """The verified claims as an identity, cleaned of what the database cannot hold.

    Raises:
        IdentityRefused: no subject, or one no provider would send (over 255 characters, control
            characters).
    """
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255 or _UNPRINTABLE.search(subject):
        raise IdentityRefused("The identity provider did not say who you are.", "no usable subject (sub)")
    email = claims.get("email")
    if not isinstance(email, str) or len(email) > 254 or _UNPRINTABLE.search(email):
        raise IdentityRefused(
            "Your email at the identity provider cannot identify you here.",
            f"{subject}: the email claim is not an email address",
        )
    return ProviderIdentity(
        issuer=issuer,
        subject=subject,
        email=email.strip(),
        given_name=_printable(claims.get("given_name"), 150),
        family_name=_printable(claims.get("family_name"), 150),
        roles=roles_from_claim(claims.get(settings.OIDC_GROUPS_CLAIM)),
    )


def external_session_start(
    *, identity: ProviderIdentity, access_token: str, refresh_token: str
) -> ExternalSession:
    """Remember a new single sign-on session's tokens, and forget sessions that have long ended."""
    known = ExternalIdentity.objects.get(issuer=identity.issuer, subject=identity.subject)
    now = timezone.now()
    ended_before = now - timedelta(
        seconds=settings.SESSION_COOKIE_AGE + settings.OIDC_ROLE_REFRESH_SECONDS + 60
    )
    ExternalSession.objects.filter(checked_at__lt=ended_before).delete()
    return ExternalSession.objects.create(
        identity=known, access_token=access_token or "", refresh_token=refresh_token or "", checked_at=now
    )


def external_session_end(pk: Any) -> None:
    """Forget a single sign-on session's tokens (sign-out, or the provider stopped vouching)."""
    if pk is not None:
        ExternalSession.objects.filter(pk=pk).delete()
