"""Group owners: who they are, setting them one by one on a group's page or in bulk from a CSV.

An owner decides the access requests of the groups they own and changes the members of those
that are not privileged, whatever their dashboard role (the rule book decides what they may do;
this module only keeps the list). Only Administrators set owners; every change is audited.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from groups_app.emails import address_problem
from groups_app.models import AccessRequest, AuditEntry, GroupOwner, MirrorGroup
from groups_app.roles import MANAGE_GROUPS
from groups_app.rules import book
from groups_app.rules.identity import InvalidIdentity, canonical_identity
from groups_app.services.audit import actor_name, audited
from groups_app.services.audit_details import details_for
from groups_app.services.errors import InvalidInput, NotAllowed

Action = AuditEntry.Action

# A CSV of owners larger than this is refused before anything is read.
MAX_IMPORT_ROWS = 10_000
MAX_CELL = 320
NOT_ADMINISTRATOR = "Only Administrators set the owners of groups."


@dataclass(frozen=True)
class OwnerCandidate:
    """Someone named as an owner: an account, or an email with no account yet."""

    user: Any
    email: str
    identity: str

    @property
    def label(self) -> str:
        if self.user is not None:
            return f"{self.user.get_username()} ({self.email})" if self.email else self.user.get_username()
        return self.email


def _check_administrator(actor: Any) -> None:
    if not book.may_act(actor, MANAGE_GROUPS):
        raise NotAllowed(NOT_ADMINISTRATOR)


def accounts_by_identity() -> dict[str, Any]:
    """Active accounts by their email's canonical identity (to resolve many owners at once)."""
    found = {}
    for user in get_user_model().objects.filter(is_active=True).exclude(email="").order_by("pk"):
        found.setdefault(_identity_or_blank(user.email), user)
    found.pop("", None)
    return found


def owner_resolve(text: str, *, accounts: dict[str, Any] | None = None) -> OwnerCandidate:
    """The person `text` names: an email (an account with the same identity, if any) or a username.

    `accounts` (from `accounts_by_identity`) saves reading every account for each name.

    Raises:
        InvalidInput (field `owner`): empty, not an address, an address without identity, an
        unknown username.
    """
    text = (text or "").strip()
    if not text or len(text) > MAX_CELL or "\x00" in text:
        raise _owner_error("Give the owner's email or username.")
    users = get_user_model().objects.filter(is_active=True)
    if "@" not in text:
        user = users.filter(username=text).first()
        if user is None:
            raise _owner_error(f"There is no account named {text}; give their email instead.")
        email = (user.email or "").strip().lower()
        return OwnerCandidate(user, email, _identity_or_blank(email))
    if problem := address_problem(text):
        raise _owner_error(problem)
    try:
        identity = canonical_identity(text)
    except InvalidIdentity as exc:
        raise _owner_error(exc.reason) from None
    match = (accounts if accounts is not None else accounts_by_identity()).get(identity)
    return OwnerCandidate(match, (match.email if match else text).strip().lower(), identity)


def _identity_or_blank(email: str) -> str:
    try:
        return canonical_identity(email)
    except InvalidIdentity:
        return ""


def _owner_error(message: str) -> InvalidInput:
    return InvalidInput(message, {"owner": message})


def _existing(group_id: str, candidate: OwnerCandidate) -> GroupOwner | None:
    matches = Q(identity=candidate.identity) if candidate.identity else Q(pk__in=[])
    if candidate.user is not None:
        matches |= Q(user=candidate.user)
    return GroupOwner.objects.filter(group_id=group_id).filter(matches).first()


def group_owner_add(*, actor: Any, group_id: str, group_name: str, owner: str) -> GroupOwner:
    """Make someone an owner of a group (an Administrator's decision, audited).

    Raises:
        NotAllowed: the actor is not an Administrator (audited as refused).
        InvalidInput (field `owner`): nobody usable is named, or they own the group already.
    """
    shown = (owner or "").replace("\x00", "").strip()[:MAX_CELL]  # as typed, storable
    with audited(
        actor=actor,
        action=Action.OWNER_ADD,
        summary=f"{actor_name(actor)} made {shown[:100]} an owner of {group_name}",
        group_id=group_id,
        group_name=group_name,
        details=details_for(Action.OWNER_ADD, owner=shown),
    ) as record:
        _check_administrator(actor)
        candidate = owner_resolve(owner)
        record.summary = f"{actor_name(actor)} made {candidate.label} an owner of {group_name}"
        record.details = details_for(Action.OWNER_ADD, owner=candidate.label, email=candidate.email)
        return _create(actor, group_id, group_name, candidate)


def _create(actor: Any, group_id: str, group_name: str, candidate: OwnerCandidate) -> GroupOwner:
    if _existing(group_id, candidate) is not None:
        raise _owner_error(f"{candidate.label} already owns {group_name}.")
    try:
        with transaction.atomic():
            return GroupOwner.objects.create(
                group_id=group_id,
                group_name=group_name,
                user=candidate.user,
                email=candidate.email,
                identity=candidate.identity,
                added_by_username=actor_name(actor),
            )
    except IntegrityError:  # set by someone else a moment ago
        raise _owner_error(f"{candidate.label} already owns {group_name}.") from None


def group_owner_remove(*, actor: Any, group_id: str, owner_id: int) -> GroupOwner:
    """Remove an owner from a group (an Administrator's decision, audited).

    Raises:
        NotAllowed, InvalidInput: no such owner of this group.
    """
    owner = GroupOwner.objects.filter(group_id=group_id, pk=owner_id).select_related("user").first()
    if owner is None:
        raise InvalidInput("That person is not an owner of this group.")
    with audited(
        actor=actor,
        action=Action.OWNER_REMOVE,
        summary=f"{actor_name(actor)} removed {owner.label} as an owner of {owner.group_name}",
        group_id=group_id,
        group_name=owner.group_name,
        details=details_for(Action.OWNER_REMOVE, owner=owner.label, email=owner.email),
    ):
        _check_administrator(actor)
        owner.delete()
    return owner


def group_owners(group_id: str) -> list[GroupOwner]:
    """The owners of a group, as set."""
    return list(GroupOwner.objects.filter(group_id=group_id).select_related("user"))


def owners_by_group(group_ids: Iterable[str]) -> dict[str, list[GroupOwner]]:
    """The owners of several groups at once (lists, the catalogue)."""
    found: dict[str, list[GroupOwner]] = {}
    for owner in GroupOwner.objects.filter(group_id__in=list(group_ids)).select_related("user"):
        found.setdefault(owner.group_id, []).append(owner)
    return found


def owner_emails(group_id: str) -> list[str]:
    """Where to write to a group's owners: each owner's account email, else the email given."""
    emails = set()
    for owner in group_owners(group_id):
        if owner.user is not None and not owner.user.is_active:
            continue
        email = (owner.user.email if owner.user is not None else "") or owner.email
        if email:
            emails.add(email)
    return sorted(emails)


def is_owner(account: Any, group_id: str) -> bool:
    """Whether `account` owns the group (to show its pages; what they may do is the book's)."""
    return GroupOwner.objects.owns(account, group_id)


def groups_owned_by(account: Any) -> QuerySet[GroupOwner]:
    """The groups an account owns (one row per group), by name."""
    return GroupOwner.objects.of_account(account).order_by("group_name", "group_id")


def requests_for_owned_groups(account: Any, *, open_only: bool = True) -> QuerySet[AccessRequest]:
    """Access requests for the groups an account owns, oldest first."""
    group_ids = groups_owned_by(account).values_list("group_id", flat=True)
    access_requests = AccessRequest.objects.filter(group_id__in=group_ids)
    if open_only:
        access_requests = access_requests.filter(status__in=AccessRequest.NEEDS_PERSON)
    return access_requests.order_by("created_at", "id")


# --- Bulk import ---------------------------------------------------------------------------


@dataclass
class ImportRow:
    """One line of an owners CSV and what it does: add, already an owner, or a problem."""

    line: int
    group_text: str
    owner_text: str
    group_id: str = ""
    group_name: str = ""
    candidate: OwnerCandidate | None = None
    outcome: str = ""  # "add", "already", "problem"
    problem: str = ""

    def describe(self) -> str:
        if self.outcome == "problem":
            return f"line {self.line}: {self.problem}"
        who = self.candidate.label if self.candidate else self.owner_text
        verb = "add" if self.outcome == "add" else "already an owner:"
        return f"line {self.line}: {verb} {who} → {self.group_name} ({self.group_id})"


@dataclass
class ImportResult:
    rows: list[ImportRow] = field(default_factory=list)
    applied: bool = False

    def count(self, outcome: str) -> int:
        return sum(1 for row in self.rows if row.outcome == outcome)


def owners_csv_rows(text: str) -> list[tuple[int, str, str]]:
    """The (line, group, owner) cells of an owners CSV with a header naming `group` and `owner`.

    Raises:
        InvalidInput: no such columns, NUL bytes, or more than MAX_IMPORT_ROWS lines.
    """
    if "\x00" in text:
        raise InvalidInput("The file contains NUL bytes; save it as plain CSV text.")
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = {(name or "").strip().lower(): name for name in reader.fieldnames or ()}
    if "group" not in columns or "owner" not in columns:
        raise InvalidInput("The CSV needs a header with the columns group and owner.")
    rows = []
    for record in reader:
        if len(rows) >= MAX_IMPORT_ROWS:
            raise InvalidInput(f"The CSV has more than {MAX_IMPORT_ROWS} rows; split it.")
        group_text = (record.get(columns["group"]) or "").strip()
        owner_text = (record.get(columns["owner"]) or "").strip()
        if group_text or owner_text:
            rows.append((reader.line_num, group_text, owner_text))
    return rows


def _find_group(
    text: str, by_id: dict[str, MirrorGroup], by_name: dict[str, list[MirrorGroup]]
) -> MirrorGroup:
    if not text or len(text) > MAX_CELL:
        raise InvalidInput("No group given.")
    if text in by_id:
        return by_id[text]
    named = by_name.get(text, [])
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise InvalidInput(f"{len(named)} groups are named {text!r}; give the group's id.")
    raise InvalidInput(f"No group has the id or exact name {text!r} (as of the last sync).")


def owners_import(*, actor: Any, rows: list[tuple[int, str, str]], apply: bool = False) -> ImportResult:
    """Plan (and with `apply`, make) the owners a CSV names; each owner added is audited.

    Groups are found in the mirror by id or exact name; a line that cannot be done is reported
    and the others still are.

    Raises:
        NotAllowed: the actor is not an Administrator.
    """
    _check_administrator(actor)
    groups = list(MirrorGroup.objects.all())
    by_id = {group.group_id: group for group in groups}
    by_name: dict[str, list[MirrorGroup]] = {}
    for group in groups:
        by_name.setdefault(group.name, []).append(group)
    result = ImportResult(applied=apply)
    accounts = accounts_by_identity()
    planned: set[tuple[str, str]] = set()
    for line, group_text, owner_text in rows:
        row = ImportRow(line=line, group_text=group_text, owner_text=owner_text)
        result.rows.append(row)
        try:
            group = _find_group(group_text, by_id, by_name)
            row.group_id, row.group_name = group.group_id, group.name
            row.candidate = owner_resolve(owner_text, accounts=accounts)
        except InvalidInput as exc:
            row.outcome, row.problem = "problem", exc.message
            continue
        key = (row.group_id, row.candidate.identity or f"user:{row.candidate.user.pk}")
        if key in planned or _existing(row.group_id, row.candidate) is not None:
            row.outcome = "already"
            continue
        planned.add(key)
        row.outcome = "add"
    if apply:
        for row in result.rows:
            if row.outcome != "add":
                continue
            try:
                _import_one(actor, row)
            except (InvalidInput, NotAllowed) as exc:
                row.outcome, row.problem = "problem", exc.message
    return result


def _import_one(actor: Any, row: ImportRow) -> None:
    candidate = row.candidate
    with audited(
        actor=actor,
        action=Action.OWNER_ADD,
        summary=f"{actor_name(actor)} made {candidate.label} an owner of {row.group_name} (imported)",
        group_id=row.group_id,
        group_name=row.group_name,
        details=details_for(
            Action.OWNER_ADD, owner=candidate.label, email=candidate.email, imported=True, line=row.line
        ),
    ):
        _create(actor, row.group_id, row.group_name, candidate)
