"""People: who is in which group, across the workspace, and changing one person's access.

The Public API has no per-person view, so searching and a person's page read the mirror
(with its "as of"); the changes go through the change pipeline, one group at a time, each
with its own audit entry and the privileged-group rules.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Q

from groups_app.emails import address_problem
from groups_app.models import AccessRequest, MirrorGroup, MirrorMember, MirrorPerson, PersonKey
from groups_app.roles import CHANGE_MEMBERSHIP
from groups_app.rules import book
from groups_app.rules.identity import same_identity
from groups_app.segment import IamRole, SegmentClient, SegmentError, UserGroup
from groups_app.services.approvals.changes import members_add_or_file
from groups_app.services.errors import InvalidInput, ServiceError
from groups_app.services.groups import Listing, group_is_privileged, page_bounds, role_name
from groups_app.services.membership import group_members_remove
from groups_app.services.mirror.selectors import (
    Freshness,
    mirror_freshness,
    mirrored_group,
    mirrored_groups,
    mirrored_roles,
)
from groups_app.services.segment_client import get_client

OPEN_REQUEST_STATES = (
    AccessRequest.Status.PENDING,
    AccessRequest.Status.APPROVED,
    AccessRequest.Status.PROVISIONING,
    AccessRequest.Status.PROVISIONING_FAILED,
    AccessRequest.Status.OUTCOME_UNKNOWN,
)


class PersonNotFound(ServiceError):
    """A People key that stands for nobody."""


# What a People key looks like (16 random bytes, URL-safe): anything else stands for nobody.
KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{22}")


def person_keys(emails: Iterable[str]) -> dict[str, str]:
    """The opaque key that stands for each address in People's URLs, by lower-cased address
    (issued the first time it is asked for; an address never appears in a URL)."""
    wanted = {email.strip().lower() for email in emails if email and len(email) <= 254}
    keys = dict(PersonKey.objects.filter(email__in=wanted).values_list("email", "key"))
    missing = wanted - keys.keys()
    if missing:
        PersonKey.objects.bulk_create(
            [PersonKey(email=email, key=secrets.token_urlsafe(16)) for email in missing],
            ignore_conflicts=True,  # issued by another request meanwhile: that key is read below
        )
        keys.update(PersonKey.objects.filter(email__in=missing).values_list("email", "key"))
    return keys


def person_email(key: str) -> str:
    """The address a People key stands for.

    Raises:
        PersonNotFound: no such key.
    """
    email = (
        PersonKey.objects.filter(key=key).values_list("email", flat=True).first()
        if isinstance(key, str) and KEY_SHAPE.fullmatch(key)
        else None
    )
    if email is None:
        raise PersonNotFound("No such person: the link may be mistyped.")
    return email


def person_emails(keys: Iterable[str]) -> list[str]:
    """The addresses some People keys stand for, in the order given (duplicates once).

    Raises:
        PersonNotFound: a key stands for nobody (mistyped, or from another installation).
    """
    wanted = list(dict.fromkeys(key for key in keys if key))
    emails = dict(PersonKey.objects.filter(key__in=wanted).values_list("key", "email"))
    if len(emails) < len(wanted):
        raise PersonNotFound("A chosen member could not be found: the link may be mistyped or out of date.")
    return [emails[key] for key in wanted]


@dataclass(frozen=True)
class PersonRow:
    email: str
    name: str
    group_count: int
    is_user: bool
    key: str  # stands for the address in URLs


# People counts its matches exactly up to here, and says "more than" past it: counting every
# match of a short query among a million memberships is what made searching slow.
PEOPLE_COUNT_LIMIT = 1000


@dataclass(frozen=True)
class PeopleListing(Listing[PersonRow]):
    """A page of People; past PEOPLE_COUNT_LIMIT matches, `total` is that limit and
    `is_count_capped` is set (the page count is then only known to go on while pages are full)."""

    is_count_capped: bool = False

    @property
    def total_text(self) -> str:
        if self.is_count_capped:
            return f"More than {PEOPLE_COUNT_LIMIT:,}"
        return f"{self.total:,}"


def people_search(*, query: str, page: int = 1, page_size: int = 25) -> PeopleListing:
    """Everyone in any group (users and pending invites) whose email or name contains `query`,
    by email: one row a person from the mirror's per-person summary (trigram-indexed on
    PostgreSQL), counted exactly up to PEOPLE_COUNT_LIMIT."""
    needle = query.replace("\x00", "").strip().casefold()
    people = MirrorPerson.objects.all()
    if needle:
        people = people.filter(Q(email__contains=needle) | Q(name_key__contains=needle))
    people = people.order_by("email").only("email", "name", "group_count", "invite_count")
    counted = people[: PEOPLE_COUNT_LIMIT + 1].count()
    is_capped = counted > PEOPLE_COUNT_LIMIT
    if is_capped:
        page = max(1, page)
        found = list(people[(page - 1) * page_size : page * page_size + 1])  # one more: a next page?
        if not found:  # past the end: the first page, as page_bounds does for a known count
            page, found = 1, list(people[: page_size + 1])
        page_count = page + 1 if len(found) > page_size else page
        found = found[:page_size]
    else:
        page, page_count, start = page_bounds(counted, page, page_size)
        found = list(people[start : start + page_size])
    keys = person_keys(p.email for p in found)
    rows = tuple(
        PersonRow(
            email=p.email,
            name=p.name,
            group_count=p.group_count,
            is_user=p.is_user,
            key=keys.get(p.email, ""),
        )
        for p in found
    )
    return PeopleListing(
        rows,
        min(counted, PEOPLE_COUNT_LIMIT),
        page,
        page_count,
        page_size,
        mirror_freshness(),
        is_count_capped=is_capped,
    )


@dataclass(frozen=True)
class PersonGroup:
    """One group a person is in, and what it grants."""

    group: UserGroup
    is_invite: bool
    is_privileged: bool
    role_names: tuple[str, ...]
    member_name: str  # the person's name as this group lists it ("" for an invite)


@dataclass(frozen=True)
class Grant:
    """A role on one resource, and the groups it comes through."""

    role_name: str
    resource: Any
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Person:
    email: str
    key: str  # stands for the address in URLs
    name: str
    groups: tuple[PersonGroup, ...]
    grants: tuple[Grant, ...]
    open_requests: tuple[AccessRequest, ...]
    freshness: Freshness

    @property
    def is_known(self) -> bool:
        return bool(self.groups)

    @property
    def is_user(self) -> bool:
        return any(not g.is_invite for g in self.groups)


def checked_person_email(email: str) -> str:
    """Raises InvalidInput: not an email address (any domain: people outside the allowed
    domains may still be members, and must be found)."""
    cleaned = (email or "").strip().lower()
    problem = address_problem(cleaned, f"“{email}”")
    if problem:
        raise InvalidInput(problem, {"email": problem})
    return cleaned


def person_groups(email: str, roles: dict[str, IamRole] | None = None) -> tuple[PersonGroup, ...]:
    """The groups the mirror lists `email` in, by name."""
    roles = mirrored_roles() if roles is None else roles
    rows = MirrorMember.objects.filter(email=email).select_related("group").order_by("group__name_key")
    found = []
    for member in rows:
        group = mirrored_group(member.group)
        found.append(
            PersonGroup(
                group=group,
                is_invite=member.kind == MirrorMember.Kind.INVITE,
                is_privileged=group_is_privileged(group, roles),
                role_names=tuple(sorted({role_name(p, roles) for p in group.permissions}, key=str.casefold)),
                member_name=member.name,
            )
        )
    return tuple(found)


def person_detail(email: str) -> Person:
    """A person's groups, the access those grant and their open requests (their audit history
    is `audit_log.audit_entries(text=email)`).

    Raises:
        InvalidInput: not an email address.
    """
    email = checked_person_email(email)
    roles = mirrored_roles()
    groups = person_groups(email, roles)
    grants: dict[tuple, list[str]] = {}
    resources: dict[tuple, Any] = {}
    for membership in groups:
        for permission in membership.group.permissions:
            for resource in permission.resources:
                key = (role_name(permission, roles), resource.type, resource.id, resource.label_set)
                resources[key] = resource
                grants.setdefault(key, []).append(membership.group.name)
    return Person(
        email=email,
        key=person_keys([email])[email],
        name=next((g.member_name for g in groups if g.member_name), ""),
        groups=groups,
        grants=tuple(
            Grant(role_name=key[0], resource=resources[key], groups=tuple(sorted(set(names))))
            for key, names in sorted(grants.items(), key=lambda item: (item[0][0].casefold(), item[0][1:3]))
        ),
        open_requests=tuple(
            AccessRequest.objects.filter(email=email, status__in=OPEN_REQUEST_STATES).order_by("-created_at")
        ),
        freshness=mirror_freshness(),
    )


ADD_CANDIDATES_SHOWN = 30


def groups_to_add(
    *, email: str, query: str = "", group_ids: list[str] | None = None
) -> list[tuple[str, str]]:
    """Groups `email` is not in, as (id, name) by name: those whose name contains `query` (the
    first ADD_CANDIDATES_SHOWN), or exactly `group_ids` (to check a submitted choice)."""
    groups = MirrorGroup.objects.exclude(members__email=email.strip().lower())
    if group_ids is not None:
        groups = groups.filter(group_id__in=group_ids)
    elif query.strip():
        groups = groups.filter(name_key__contains=query.strip().casefold())
    groups = groups.order_by("name_key", "group_id").values_list("group_id", "name")
    return list(groups if group_ids is not None else groups[:ADD_CANDIDATES_SHOWN])


@dataclass(frozen=True)
class GroupOffer:
    """What the rule book says, before anything is sent, about changing one group's members."""

    is_privileged: bool
    refusal: str  # why the actor may not change it at all ("" when they may, perhaps with approval)


def group_offers(*, actor: Any, group_ids: Iterable[str]) -> dict[str, GroupOffer]:
    """The mirrored groups among `group_ids`, each as the rule book answers for `actor` before any
    address is typed: the pages show up front a group the actor may not change (a privileged
    group for Help desk) instead of offering it and refusing it later. The change itself is still
    decided by the pipeline, on what is sent."""
    offers = {}
    for group_id, group in mirrored_groups(group_ids).items():
        change = book.ProposedChange(actor=actor, permission=CHANGE_MEMBERSHIP, group=group)
        decision = book.decide(change)
        offers[group_id] = GroupOffer(
            is_privileged=change.is_privileged_group,
            refusal="" if decision.verdict != book.Verdict.REFUSED else decision.reason,
        )
    return offers


def addition_refusal(*, actor: Any, email: str) -> str:
    """Why the rule book refuses adding `email` to any group at all (the actor's own address, or a
    domain outside the allowed ones), or "" when it does not."""
    decision = book.decide(book.ProposedChange(actor=actor, permission=CHANGE_MEMBERSHIP, adds=(email,)))
    return decision.reason if decision.verdict == book.Verdict.REFUSED else ""


@dataclass(frozen=True)
class GroupOutcome:
    """What became of one group's part of a change to one person's access."""

    group_id: str
    group_name: str
    ok: bool
    message: str
    entry_id: int | None = None


@dataclass
class PersonChange:
    """The outcome of one action on one person across several groups."""

    verb: str
    outcomes: list[GroupOutcome] = field(default_factory=list)

    @property
    def succeeded(self) -> list[GroupOutcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def not_done(self) -> list[GroupOutcome]:
        return [o for o in self.outcomes if not o.ok]


def checked_selection(group_ids: list[str]) -> dict[str, str]:
    """The selected groups that the mirror knows, id → name, in the order chosen.

    Raises:
        InvalidInput: nothing selected, too many, or a group the mirror does not know.
    """
    wanted = list(dict.fromkeys(g for g in group_ids if g))
    if not wanted:
        raise InvalidInput("Choose at least one group.", {"groups": "Choose at least one group."})
    if len(wanted) > settings.MAX_GROUPS_PER_PERSON_CHANGE:
        message = f"At most {settings.MAX_GROUPS_PER_PERSON_CHANGE} groups at once; you chose {len(wanted)}."
        raise InvalidInput(message, {"groups": message})
    names = dict(MirrorGroup.objects.filter(group_id__in=wanted).values_list("group_id", "name"))
    unknown = [g for g in wanted if g not in names]
    if unknown:
        message = "Some of the chosen groups no longer exist; reload the page."
        raise InvalidInput(message, {"groups": message})
    return {g: names[g] for g in wanted}


def _each_group(
    change: PersonChange,
    selection: dict[str, str],
    act: Any,
    *,
    submission_key: str | None,
) -> PersonChange:
    """Run `act(group_id, key)` for each group; one group's refusal or failure does not stop the rest."""
    for group_id, name in selection.items():
        key = f"{submission_key}:{group_id}"[:64] if submission_key else None
        try:
            message = act(group_id, key)
        except (ServiceError, SegmentError) as exc:  # an unknown outcome or a duplicate carries its entry
            entry = getattr(exc, "entry", None)
            change.outcomes.append(
                GroupOutcome(group_id, name, False, exc.message, entry.pk if entry else None)
            )
        else:
            change.outcomes.append(GroupOutcome(group_id, name, True, message))
    return change


def person_group_remove(
    *,
    actor: Any,
    email: str,
    group_id: str,
    group_name: str,
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> tuple[str, Any]:
    """Take one person out of one group (one change, one audit entry): what to say, and the entry.

    Raises:
        What group_members_remove raises.
    """
    changed = group_members_remove(
        actor=actor, group_id=group_id, emails=[email], submission_key=submission_key, client=client
    )
    return f"Removed from {group_name}.", changed.entry


def person_group_add(
    *,
    actor: Any,
    email: str,
    group_id: str,
    group_name: str,
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> tuple[str, Any, bool]:
    """Add one person to one group, or file an access request for a privileged group: what to
    say, the entry, and whether it was filed for a second Administrator.

    Raises:
        What members_add_or_file raises.
    """
    changed = members_add_or_file(
        actor=actor, group_id=group_id, emails=[email], submission_key=submission_key, client=client
    )
    return f"{group_name}: {changed.result.message}", changed.entry, bool(changed.result.awaiting_approval)


def person_remove_from_groups(
    *,
    actor: Any,
    email: str,
    group_ids: list[str],
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> PersonChange:
    """Take one person out of the chosen groups at once, in this process: one change (and one
    audit entry) per group, each under the pipeline's rules (role, privileged groups). The pages
    run the same change as a job in the worker (`services.jobs`).

    Raises:
        InvalidInput: not an email, or no usable selection (nothing is sent).
    """
    email = checked_person_email(email)
    selection = checked_selection(group_ids)
    client = client or get_client()

    def remove(group_id: str, key: str | None) -> str:
        message, _ = person_group_remove(
            actor=actor,
            email=email,
            group_id=group_id,
            group_name=selection[group_id],
            submission_key=key,
            client=client,
        )
        return message

    return _each_group(PersonChange("removed"), selection, remove, submission_key=submission_key)


def person_add_to_groups(
    *,
    actor: Any,
    email: str,
    group_ids: list[str],
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> PersonChange:
    """Add one person to the chosen groups at once, in this process, one change per group (a
    privileged group may turn the addition into an access request for a second Administrator).

    Raises:
        InvalidInput: not an email, or no usable selection (nothing is sent).
    """
    email = checked_person_email(email)
    selection = checked_selection(group_ids)
    client = client or get_client()

    def add(group_id: str, key: str | None) -> str:
        message, _, _ = person_group_add(
            actor=actor,
            email=email,
            group_id=group_id,
            group_name=selection[group_id],
            submission_key=key,
            client=client,
        )
        return message

    return _each_group(PersonChange("added"), selection, add, submission_key=submission_key)


@dataclass(frozen=True)
class CopyPreview:
    """What copying another person's groups would change: only additions are offered."""

    email: str
    source: str
    to_add: tuple[PersonGroup, ...]
    kept: tuple[PersonGroup, ...]  # groups this person is in and the source is not: left as they are
    shared: tuple[PersonGroup, ...]
    freshness: Freshness


def copy_access_preview(*, email: str, source: str) -> CopyPreview:
    """The groups `source` is in and `email` is not, from the mirror.

    Raises:
        InvalidInput (field `source`): not an email, the same person (compared as the rule
            book compares identities, so an alias or a look-alike spelling is the same), or in
            no group.
    """
    email = checked_person_email(email)
    try:
        source = checked_person_email(source)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, {"source": exc.message}) from None
    if same_identity(source, email):
        message = "Choose someone else to copy from."
        raise InvalidInput(message, {"source": message})
    theirs = person_groups(source)
    if not theirs:
        message = f"{source} is in no group (as of the last sync)."
        raise InvalidInput(message, {"source": message})
    mine = person_groups(email)
    my_ids = {g.group.id for g in mine}
    their_ids = {g.group.id for g in theirs}
    return CopyPreview(
        email=email,
        source=source,
        to_add=tuple(g for g in theirs if g.group.id not in my_ids),
        kept=tuple(g for g in mine if g.group.id not in their_ids),
        shared=tuple(g for g in mine if g.group.id in their_ids),
        freshness=mirror_freshness(),
    )
