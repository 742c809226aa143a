"""The rule book: every rule that decides whether a change to the workspace may be made.

Each rule is a small named object that looks at one proposed change and answers nothing (no
objection), *refused(reason)* or *needs a second person(reason)*. The change pipeline asks
the book once per change, with the facts it is about to send: every address it sends (not
the subset a mirror calls new), compared as canonical identities (`rules.identity`). No view,
door or other service decides these rules; they ask this module.

The rules, in the order they are asked (the first refusal wins; a second person is needed only
when nothing refuses):

- `RoleRule`: the actor's role carries the permission the change needs, or the actor owns the
  group and the change is one an owner makes (its members, its access requests, its reviews);
- `ActorIdentityRule`: an account that changes anything has an email with an identity, so the
  self rules can hold;
- `PrivilegedGroupRule`: only Administrators change a group that grants a privileged role (an
  owner may approve a request for it, as one of two people);
- `SelfApprovalRule`: nobody approves a change they asked for, or one for themselves;
- `SelfChangeRule`: nobody adds themselves to a group, in any spelling, even with an approval;
- `EmailDomainRule`: added addresses are within `ALLOWED_EMAIL_DOMAINS`;
- `OwnerApprovalRule`: an owner's approval of an addition to a privileged group is one of the
  two people; an Administrator must approve it too;
- `TwoPersonRule`: with `TWO_PERSON_RULE`, a new member of a privileged group, or a grant of a
  privileged role, needs a second Administrator's approval.

Whether the actor owns the group is a fact of the change (`ProposedChange.is_group_owner`),
read once from the owners the Administrators set (`GroupOwner`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import idna
from django.conf import settings

from groups_app.models import GroupOwner
from groups_app.roles import (
    CHANGE_MEMBERSHIP,
    HANDLE_ACCESS_REQUESTS,
    MANAGE_GROUPS,
    RUN_REVIEWS,
    is_administrator,
)
from groups_app.rules.identity import InvalidIdentity, canonical_identity
from groups_app.segment import UserGroup
from groups_app.services.audit import SystemActor
from groups_app.services.workspace import privileged_role_names

ROLE_DENIED = "Your role does not allow this change."
NO_IDENTITY = (
    "Your account has no usable email address, so the rules cannot tell you apart from the people "
    "you change; ask an Administrator to set one before making changes."
)
PRIVILEGED_GROUP = (
    "{name} is a privileged group (it grants {roles}): only Administrators change its members or permissions."
)
SELF_CHANGE = "You cannot add yourself to a group; request access instead, and another person will decide."
SELF_APPROVAL = (
    "You cannot approve a change you asked for, or one for yourself; another person must decide it."
)
APPROVER_NOT_ADMINISTRATOR = "Only an Administrator can approve a change to a privileged group."
OUTSIDE_DOMAINS = "{emails} {verb} outside the allowed domains ({domains}); Group Admin does not add them."
SECOND_MEMBER = (
    "{name} is a privileged group: a second Administrator must approve adding {who}; nothing was changed yet."
)
SECOND_GRANT = "Granting {roles} needs a second Administrator's approval; nothing was changed yet."
OWNER_APPROVAL = (
    "{name} is a privileged group: your approval as its owner is recorded, and an Administrator "
    "must approve too before {who} is added."
)

# What owning a group allows without a role carrying it: its members, its access requests and
# its reviews.
OWNER_PERMISSIONS = frozenset({CHANGE_MEMBERSHIP, HANDLE_ACCESS_REQUESTS, RUN_REVIEWS})


class Verdict(enum.StrEnum):
    ALLOWED = "allowed"
    REFUSED = "refused"
    NEEDS_SECOND_PERSON = "needs a second person"


@dataclass(frozen=True)
class Decision:
    """The book's answer: a verdict, and for anything but allowed the rule and the reason.

    `field` names the form field the reason belongs next to (an address refused for its domain).
    """

    verdict: Verdict
    rule: str = ""
    reason: str = ""
    field: str = ""

    @property
    def is_allowed(self) -> bool:
        return self.verdict == Verdict.ALLOWED


ALLOWED = Decision(Verdict.ALLOWED)


@dataclass(frozen=True)
class Approval:
    """A second person's decision that a change may be made: who approved, and what they approved.

    `requested_by` is the account that asked (the requester of an access request, the proposer of
    a grant), `for_email` the address an access request is for. `source` is the approved object
    (an AccessRequest or a ChangeProposal): the change's audit entry links it.
    """

    approved_by: Any
    source: Any
    requested_by_id: int | None = None
    requested_by_email: str = ""
    for_email: str = ""


@dataclass(frozen=True)
class ProposedChange:
    """The facts of one change, as the pipeline is about to send it."""

    actor: Any
    permission: str
    group: UserGroup | None = None
    adds: tuple[str, ...] = ()  # every address sent to be added
    new_members: tuple[str, ...] = ()  # of those, the ones not in the group by a live read
    removes: tuple[str, ...] = ()
    grants: tuple[str, ...] = ()  # names of the roles the change grants
    approval: Approval | None = None
    group_id: str = ""  # the group, when it is known before it is read (the group's id wins)
    privileged_roles: tuple[str, ...] = field(init=False, default=())
    is_group_owner: bool = field(init=False, default=False)  # the actor owns the group

    def __post_init__(self) -> None:
        roles = tuple(privileged_role_names(self.group.permissions)) if self.group is not None else ()
        object.__setattr__(self, "privileged_roles", roles)
        group_id = self.group.id if self.group is not None else self.group_id
        object.__setattr__(self, "group_id", group_id or "")
        if group_id and not is_system(self.actor):
            object.__setattr__(self, "is_group_owner", GroupOwner.objects.owns(self.actor, group_id))

    @property
    def is_privileged_group(self) -> bool:
        return bool(self.privileged_roles)

    @property
    def is_owner_approval(self) -> bool:
        """The actor approves this change as an owner of the group (without an Administrator's role)."""
        return (
            self.approval is not None
            and self.is_group_owner
            and getattr(self.approval.approved_by, "pk", None) is not None
            and self.approval.approved_by.pk == getattr(self.actor, "pk", None)
            and not is_administrator(self.actor)
        )

    @property
    def granted_privileged_roles(self) -> list[str]:
        configured = {role.casefold() for role in settings.PRIVILEGED_ROLES}
        return sorted({name for name in self.grants if name.casefold() in configured})


def is_system(actor: Any) -> bool:
    """Scheduled jobs act on decisions already taken (an expiry, a reconciliation)."""
    return isinstance(actor, SystemActor)


def identity_of(account: Any) -> str:
    """An account's canonical identity, or "" when its email has none."""
    try:
        return canonical_identity(getattr(account, "email", "") or "")
    except InvalidIdentity:
        return ""


def identities(addresses: Iterable[str]) -> dict[str, str]:
    """Each address's canonical identity (an address without one maps to itself)."""
    found = {}
    for address in addresses:
        try:
            found[address] = canonical_identity(address)
        except InvalidIdentity:
            found[address] = address
    return found


class Rule:
    name = ""

    def check(self, change: ProposedChange) -> Decision | None:
        raise NotImplementedError

    def refused(self, reason: str, field: str = "") -> Decision:
        return Decision(Verdict.REFUSED, self.name, reason, field)


class RoleRule(Rule):
    name = "role"

    def check(self, change: ProposedChange) -> Decision | None:
        if change.actor is None:
            return self.refused(ROLE_DENIED)
        if change.actor.has_perm(change.permission):
            return None
        if change.is_group_owner and change.permission in OWNER_PERMISSIONS:
            return None
        return self.refused(ROLE_DENIED)


class ActorIdentityRule(Rule):
    name = "actor_identity"

    def check(self, change: ProposedChange) -> Decision | None:
        if not is_system(change.actor) and not identity_of(change.actor):
            return self.refused(NO_IDENTITY)
        return None


class PrivilegedGroupRule(Rule):
    name = "privileged_group"

    def check(self, change: ProposedChange) -> Decision | None:
        if change.is_privileged_group and not is_administrator(change.actor):
            if change.is_owner_approval:
                return None  # one of two people: `OwnerApprovalRule`
            roles = ", ".join(change.privileged_roles)
            return self.refused(PRIVILEGED_GROUP.format(name=change.group.name, roles=roles))
        return None


class SelfChangeRule(Rule):
    name = "self_change"

    def check(self, change: ProposedChange) -> Decision | None:
        own = identity_of(change.actor)
        if own and own in identities(change.adds).values():
            return self.refused(SELF_CHANGE)
        return None


class SelfApprovalRule(Rule):
    name = "self_approval"

    def check(self, change: ProposedChange) -> Decision | None:
        approval = change.approval
        if approval is None:
            return None
        approver = approval.approved_by
        own = identity_of(approver)
        asked_by_approver = approval.requested_by_id is not None and approval.requested_by_id == getattr(
            approver, "pk", None
        )
        asked_for = identities([a for a in (approval.requested_by_email, approval.for_email) if a]).values()
        if asked_by_approver or (own and own in asked_for):
            return self.refused(SELF_APPROVAL)
        if change.is_privileged_group and not is_administrator(approver) and not change.is_owner_approval:
            return self.refused(APPROVER_NOT_ADMINISTRATOR)
        return None


class OwnerApprovalRule(Rule):
    name = "owner_approval"

    def check(self, change: ProposedChange) -> Decision | None:
        if not (change.is_owner_approval and change.is_privileged_group):
            return None
        who = change.approval.for_email or (change.adds[0] if len(change.adds) == 1 else "anyone")
        reason = OWNER_APPROVAL.format(name=change.group.name, who=who)
        return Decision(Verdict.NEEDS_SECOND_PERSON, self.name, reason)


def outside_allowed_domains(addresses: Iterable[str]) -> str:
    """Why some of these addresses may not be added (their domains), or "" when all may."""
    allowed = set()
    for domain in settings.ALLOWED_EMAIL_DOMAINS:
        try:
            allowed.add(idna.encode(domain.strip().lstrip("@"), uts46=True).decode().lower())
        except idna.IDNAError:
            continue
    if not allowed:
        return ""
    outside = [
        address
        for address, identity in identities(addresses).items()
        if identity.rpartition("@")[2] not in allowed
    ]
    if not outside:
        return ""
    return OUTSIDE_DOMAINS.format(
        emails=", ".join(outside),
        verb="is" if len(outside) == 1 else "are",
        domains=", ".join(sorted(allowed)),
    )


class EmailDomainRule(Rule):
    name = "email_domain"

    def check(self, change: ProposedChange) -> Decision | None:
        reason = outside_allowed_domains(change.adds)
        return self.refused(reason, field="emails") if reason else None


class TwoPersonRule(Rule):
    name = "two_person"

    def check(self, change: ProposedChange) -> Decision | None:
        if not settings.TWO_PERSON_RULE or is_system(change.actor) or change.approval is not None:
            return None
        if change.is_privileged_group and change.new_members:
            count = len(change.new_members)
            who = change.new_members[0] if count == 1 else f"{count} people"
            reason = SECOND_MEMBER.format(name=change.group.name, who=who)
            return Decision(Verdict.NEEDS_SECOND_PERSON, self.name, reason)
        if privileged := change.granted_privileged_roles:
            reason = SECOND_GRANT.format(roles=", ".join(privileged))
            return Decision(Verdict.NEEDS_SECOND_PERSON, self.name, reason)
        return None


RULES: tuple[Rule, ...] = (
    RoleRule(),
    ActorIdentityRule(),
    PrivilegedGroupRule(),
    SelfApprovalRule(),
    SelfChangeRule(),
    EmailDomainRule(),
    OwnerApprovalRule(),
    TwoPersonRule(),
)


def decide(change: ProposedChange) -> Decision:
    """The book's one answer for a change: the first refusal, else a second person, else allowed."""
    second_person = None
    for rule in RULES:
        decision = rule.check(change)
        if decision is None:
            continue
        if decision.verdict == Verdict.REFUSED:
            return decision
        second_person = second_person or decision
    return second_person or ALLOWED


def may_approve(
    approver: Any, *, requested_by_id: int | None, requested_by_email: str = "", for_email: str = ""
) -> bool:
    """Whether `approver` is someone else than whoever asked (for pages deciding what to offer)."""
    approval = Approval(approver, None, requested_by_id, requested_by_email, for_email)
    return SelfApprovalRule().check(ProposedChange(actor=approver, permission="", approval=approval)) is None


def may_act(actor: Any, permission: str, *, group_id: str = "") -> bool:
    """Whether the actor's role, or their ownership of `group_id`, allows this kind of change
    (the gate of a page or a decision; the change itself is still decided in full)."""
    return RoleRule().check(ProposedChange(actor=actor, permission=permission, group_id=group_id)) is None


def may_describe(actor: Any, *, group_id: str) -> bool:
    """Whether `actor` may write what a group is for (the catalogue): Administrators, its owners."""
    if may_act(actor, MANAGE_GROUPS):
        return True
    return ProposedChange(actor=actor, permission=MANAGE_GROUPS, group_id=group_id).is_group_owner
