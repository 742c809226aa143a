"""Undo a change observed outside Group Admin: its reverse, through the same doors as any change.

An "observed" audit entry (written by `mirror.drift`) says who was added and removed, the
permissions before and after, a rename, a deletion. Its undo re-adds who was removed (users
and invites), removes who was added, restores the permission set exactly (labels included),
renames the group back, or re-creates a deleted group with its members and permissions. Each
step is an ordinary change: the rule book decides it, and what needs a second Administrator (an
addition to a privileged group, a privileged grant) is filed for one, as `approvals.changes`
files it. One "undo" audit entry links them all to the entry undone (`undoes`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from groups_app.models import AuditEntry
from groups_app.roles import MANAGE_GROUPS
from groups_app.rules import book
from groups_app.segment import Permission, SegmentClient, SegmentError
from groups_app.services.approvals.access_requests import access_request_file
from groups_app.services.approvals.changes import members_add_or_file, permissions_replace_or_propose
from groups_app.services.audit import actor_name, audited
from groups_app.services.audit_details import details_for
from groups_app.services.changes import Changed
from groups_app.services.errors import (
    AwaitingApproval,
    ChangeOutcomeUnknown,
    InvalidInput,
    NotAllowed,
    ServiceError,
)
from groups_app.services.grants import permission_from_description, permissions_fingerprint
from groups_app.services.manage import group_create, group_rename
from groups_app.services.membership import AddResult, group_members_remove
from groups_app.services.segment_client import get_client
from groups_app.services.text import plural
from groups_app.services.workspace import Membership

Action = AuditEntry.Action
NOT_ADMINISTRATOR = "Only Administrators undo changes observed outside Group Admin."


@dataclass(frozen=True)
class UndoPlan:
    """The reverse of one observed change, as its preview shows it."""

    entry: AuditEntry
    readd: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    restore_permissions: tuple[dict, ...] | None = None  # descriptions, labels included
    permissions_now: tuple[dict, ...] = ()  # what the observation found (the set replaced)
    rename_to: str = ""
    rename_from: str = ""
    recreate: bool = False
    undone_by: AuditEntry | None = None
    notes: tuple[str, ...] = ()

    @property
    def has_steps(self) -> bool:
        return bool(
            self.readd
            or self.remove
            or self.restore_permissions is not None
            or self.rename_to
            or self.recreate
        )

    @property
    def restores_privileged_role(self) -> bool:
        configured = {role.casefold() for role in settings.PRIVILEGED_ROLES}
        return any((p.get("roleName") or "").casefold() in configured for p in self.restore_permissions or ())


@dataclass
class UndoStep:
    """What became of one step: done, filed for a second Administrator, refused, failed, unknown."""

    label: str
    outcome: str
    message: str = ""
    entry_id: int | None = None


@dataclass
class UndoResult:
    entry: AuditEntry  # the "undo" entry
    steps: list[UndoStep] = field(default_factory=list)
    group_id: str = ""

    @property
    def is_complete(self) -> bool:
        return all(step.outcome in ("done", "filed") for step in self.steps)


def _observed(entry_id: int) -> AuditEntry:
    entry = AuditEntry.objects.filter(pk=entry_id, action=Action.OBSERVED).first()
    if entry is None:
        raise InvalidInput("Only a change observed outside Group Admin can be undone here.")
    return entry


def _earlier_undo(entry: AuditEntry) -> AuditEntry | None:
    """A completed undo of this entry whose every step was done or filed."""
    for undo in AuditEntry.objects.filter(
        action=Action.UNDO, status=AuditEntry.Status.SUCCEEDED, details__undoes=entry.pk
    ).order_by("-id"):
        if undo.details.get("complete"):
            return undo
    return None


def undo_plan(*, entry_id: int) -> UndoPlan:
    """What undoing an observed change would do (read from the entry; nothing is sent).

    Raises:
        InvalidInput: not an observed entry.
    """
    entry = _observed(entry_id)
    details = entry.details or {}
    notes = []
    recreate = bool(details.get("group_deleted"))
    if details.get("group_created"):
        notes.append(
            "The group was created outside Group Admin; undo does not delete it (delete it from its page)."
        )
        return UndoPlan(entry=entry, notes=tuple(notes), undone_by=_earlier_undo(entry))
    if recreate and not details.get("removed"):
        notes.append(
            "Its members were not recorded when it was deleted; only its name and permissions return."
        )
    before = details.get("permissions_before")
    after = details.get("permissions_after")
    restore = None
    if recreate:
        restore = tuple(before or ()) or None
    elif after is not None or before is not None:
        restore = tuple(before or ())
    return UndoPlan(
        entry=entry,
        readd=tuple(_emails(details.get("removed"))),
        remove=() if recreate else tuple(_emails(details.get("added"))),
        restore_permissions=restore,
        permissions_now=tuple(after or ()),
        rename_to=details.get("old_name", "") if not recreate else "",
        rename_from=details.get("new_name", ""),
        recreate=recreate,
        undone_by=_earlier_undo(entry),
        notes=tuple(notes),
    )


def _emails(value: Any) -> list[str]:
    return [str(e).strip().lower() for e in value or () if isinstance(e, str) and e.strip()]


def undo_apply(
    *, actor: Any, entry_id: int, submission_key: str | None = None, client: SegmentClient | None = None
) -> UndoResult:
    """Undo an observed change, step by step, each through the pipeline and the rule book.

    A step refused or failed does not stop the others; each says what became of it.

    Raises:
        NotAllowed: not an Administrator (audited as refused).
        InvalidInput: not an observed entry, nothing to undo, or already undone.
        DuplicateSubmission: this undo form was already submitted.
    """
    client = client or get_client()
    plan = undo_plan(entry_id=entry_id)
    entry = plan.entry
    with audited(
        actor=actor,
        action=Action.UNDO,
        summary=f"{actor_name(actor)} undid the change observed outside Group Admin in {entry.group_name} (#{entry.pk})",
        group_id=entry.group_id,
        group_name=entry.group_name,
        details=details_for(Action.UNDO, undoes=entry.pk),
        submission_key=submission_key,
    ) as record:
        if not book.may_act(actor, MANAGE_GROUPS, group_id=entry.group_id):
            raise NotAllowed(NOT_ADMINISTRATOR)
        if plan.undone_by is not None:
            raise InvalidInput(f"This change was undone already (#{plan.undone_by.pk}).")
        if not plan.has_steps:
            raise InvalidInput("There is nothing Group Admin can undo in this change.")
        result = _run(actor, plan, client, key=submission_key or uuid.uuid4().hex)
        record.details = {
            "steps": [
                {"step": s.label, "outcome": s.outcome, "message": s.message, "entry": s.entry_id}
                for s in result.steps
            ],
            "complete": result.is_complete,
            **({"group_id": result.group_id} if result.group_id != entry.group_id else {}),
        }
        done = sum(1 for s in result.steps if s.outcome in ("done", "filed"))
        record.summary = (
            f"{actor_name(actor)} undid the change observed outside Group Admin in {entry.group_name} "
            f"(#{entry.pk}): {done} of {plural(len(result.steps), 'step')} done or filed"
        )
    result.entry = record.entry
    return result


def _run(actor: Any, plan: UndoPlan, client: SegmentClient, *, key: str) -> UndoResult:
    entry = plan.entry
    result = UndoResult(entry=entry, group_id=entry.group_id)
    group_id = entry.group_id

    def step(label: str, call: Callable[[], Any]) -> UndoStep:
        done = _step(label, call)
        result.steps.append(done)
        return done

    if plan.recreate:
        created = step(
            f"Re-create the group {entry.group_name}", lambda: _created(actor, entry, client, key, result)
        )
        if created.outcome != "done":
            return result
        group_id = result.group_id
    if plan.rename_to:
        step(
            f"Rename back to {plan.rename_to}",
            lambda: group_rename(
                actor=actor,
                group_id=group_id,
                name=plan.rename_to,
                submission_key=f"{key}-rename",
                client=client,
            ),
        )
    permissions_filed = False
    if plan.restore_permissions is not None:
        restored = step(
            "Restore the permissions as they were",
            lambda: _restore_permissions(actor, plan, group_id, client, f"{key}-permissions"),
        )
        permissions_filed = restored.outcome == "filed"
    if plan.remove:
        step(
            f"Remove {plural(len(plan.remove), 'member')} added outside Group Admin",
            lambda: group_members_remove(
                actor=actor,
                group_id=group_id,
                emails=list(plan.remove),
                submission_key=f"{key}-remove",
                client=client,
            ),
        )
    if plan.readd:
        label = f"Re-add {plural(len(plan.readd), 'member')} removed outside Group Admin"
        if permissions_filed and plan.restores_privileged_role:
            # The privileged grant waits for a second Administrator; so do the people it would cover.
            step(label, lambda: _file_requests(actor, group_id, plan, client))
        else:
            step(
                label,
                lambda: members_add_or_file(
                    actor=actor,
                    group_id=group_id,
                    emails=list(plan.readd),
                    submission_key=f"{key}-readd",
                    client=client,
                ),
            )
    return result


def _step(label: str, call: Callable[[], Any]) -> UndoStep:
    try:
        outcome = call()
    except AwaitingApproval as exc:
        return UndoStep(label, "filed", exc.message)
    except ChangeOutcomeUnknown as exc:
        return UndoStep(label, "unknown", exc.message, exc.entry.pk)
    except (ServiceError, SegmentError) as exc:
        return UndoStep(label, "refused" if isinstance(exc, ServiceError) else "failed", exc.message)
    if isinstance(outcome, UndoStep):
        return UndoStep(label, outcome.outcome, outcome.message, outcome.entry_id)
    if isinstance(outcome, Changed):
        if isinstance(outcome.result, AddResult) and outcome.result.awaiting_approval:
            return UndoStep(
                label, "filed", outcome.result.message, outcome.entry.pk if outcome.entry else None
            )
        message = outcome.result.message if isinstance(outcome.result, AddResult) else ""
        return UndoStep(label, "done", message, outcome.entry.pk)
    return UndoStep(label, "done")


def _created(actor: Any, entry: AuditEntry, client: SegmentClient, key: str, result: UndoResult) -> Changed:
    changed = group_create(actor=actor, name=entry.group_name, submission_key=f"{key}-create", client=client)
    result.group_id = changed.result.id
    return changed


def _restore_permissions(
    actor: Any, plan: UndoPlan, group_id: str, client: SegmentClient, key: str
) -> Changed | UndoStep:
    """Replace the set with the one before, only if the group still has the set observed after."""
    wanted = [permission_from_description(d) for d in plan.restore_permissions or ()]
    if plan.recreate:
        current: list[Permission] = list(client.get_user_group(group_id).permissions)
    else:
        current = [permission_from_description(d) for d in plan.permissions_now]
    return permissions_replace_or_propose(
        actor=actor,
        group_id=group_id,
        permissions=wanted,
        fingerprint=permissions_fingerprint(current),
        confirm_empty=not wanted,
        submission_key=key,
        client=client,
    )


def _file_requests(actor: Any, group_id: str, plan: UndoPlan, client: SegmentClient) -> UndoStep:
    filed = access_request_file(
        actor=actor,
        group_id=group_id,
        emails=list(plan.readd),
        justification=(
            f"Re-added by {actor_name(actor)} undoing #{plan.entry.pk}; a privileged group needs a second "
            "Administrator."
        ),
        members=Membership(users=(), invites=()),
        client=client,
    )
    count = len(filed.filed) + len(filed.duplicates)
    return UndoStep(
        "",
        "filed",
        f"Access requests were filed for {plural(count, 'person', 'people')} for a second Administrator.",
    )
