"""Reconciliation: find out what became of a change whose outcome Segment did not confirm.

Each action reads back exactly what its audit details say it touched (the emails'
membership, the permission set, the name, the group's existence) and records on the entry,
once: applied, not applied or partly applied, with what was read and when. An access request
whose provisioning it resolves moves on with it. Safe to run again: a resolved entry is
never resolved twice, and a read that fails leaves the entry for the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from groups_app.models import AccessRequest, AuditEntry
from groups_app.segment import NotFound, SegmentClient, SegmentError
from groups_app.services.audit import SYSTEM_ACTOR, AuditRecord, actor_name, complete
from groups_app.services.grants import description_key, permission_key, permissions_fingerprint
from groups_app.services.groups import group_membership
from groups_app.services.segment_client import get_client
from groups_app.services.transitions import ConcurrentChange, transition
from groups_app.services.workspace import membership_fingerprint

logger = logging.getLogger("groups_app.reconcile")

STOPPED = "the process making this change stopped before recording its outcome"

Action = AuditEntry.Action
Resolution = AuditEntry.Resolution


@dataclass(frozen=True)
class ReadBack:
    """What reading back found: the resolution, and the evidence for it."""

    resolution: str
    applied: list[str] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)
    observed: dict[str, Any] = field(default_factory=dict)


def _by_parts(applied: list[str], not_applied: list[str], **observed: Any) -> ReadBack:
    if not not_applied:
        resolution = Resolution.APPLIED
    elif not applied:
        resolution = Resolution.NOT_APPLIED
    else:
        resolution = Resolution.PARTLY_APPLIED
    return ReadBack(resolution, applied, not_applied, observed)


def _members_add(entry: AuditEntry, client: SegmentClient) -> ReadBack:
    emails = entry.details.get("emails") or []
    present = group_membership(group_id=entry.group_id, client=client).emails
    return _by_parts([e for e in emails if e in present], [e for e in emails if e not in present])


def _members_remove(entry: AuditEntry, client: SegmentClient) -> ReadBack:
    emails = entry.details.get("emails") or []
    present = group_membership(group_id=entry.group_id, client=client).emails
    return _by_parts([e for e in emails if e not in present], [e for e in emails if e in present])


def _members_replace(entry: AuditEntry, client: SegmentClient) -> ReadBack:
    wanted = set(entry.details.get("emails") or [])
    present = group_membership(group_id=entry.group_id, client=client).emails
    if present == wanted:
        return ReadBack(Resolution.APPLIED, observed={"member_count": len(present)})
    if membership_fingerprint(present) == entry.details.get("fingerprint"):
        return ReadBack(Resolution.NOT_APPLIED, observed={"member_count": len(present)})
    to_add = entry.details.get("to_add") or []
    to_remove = entry.details.get("to_remove") or []
    applied = [e for e in to_add if e in present] + [e for e in to_remove if e not in present]
    not_applied = [e for e in to_add if e not in present] + [e for e in to_remove if e in present]
    return _by_parts(applied, not_applied, member_count=len(present))


def _grant_text(description: dict[str, Any]) -> str:
    resources = ", ".join(
        f"{r['type']} {r['id']}"
        + "".join(f" [{label['key']}={label['value']}]" for label in r.get("labels") or ())
        for r in description["resources"]
    )
    return f"{description.get('roleName') or description['roleId']} on {resources or 'no resources'}"


def _permissions_add(entry: AuditEntry, client: SegmentClient) -> ReadBack:
    current = {permission_key(p) for p in client.get_user_group(entry.group_id).permissions}
    added = entry.details.get("added") or []
    return _by_parts(
        [_grant_text(d) for d in added if description_key(d) in current],
        [_grant_text(d) for d in added if description_key(d) not in current],
    )


def _permissions_replace(entry: AuditEntry, client: SegmentClient) -> ReadBack:
    permissions = client.get_user_group(entry.group_id).permissions
    current = {permission_key(p) for p in permissions}
    wanted = {description_key(d) for d in entry.details.get("wanted") or []}
    if current == wanted:
        return ReadBack(Resolution.APPLIED)
    if permissions_fingerprint(permissions) == entry.details.get("fingerprint"):
        return ReadBack(Resolution.NOT_APPLIED)
    return ReadBack(
        Resolution.PARTLY_APPLIED,
        observed={"grants_now": len(current), "grants_wanted": len(wanted)},
    )


def _group_create(entry: AuditEntry, client: SegmentClient) -> ReadBack:
    name = entry.details.get("name", "")
    found = [g.id for g in client.iter_user_groups() if g.name == name]
    if found:
        return ReadBack(Resolution.APPLIED, observed={"group_id": found[0]})
    return ReadBack(Resolution.NOT_APPLIED)


def _group_rename(entry: AuditEntry, client: SegmentClient) -> ReadBack:
    name = client.get_user_group(entry.group_id).name
    applied = name == entry.details.get("new_name")
    return ReadBack(Resolution.APPLIED if applied else Resolution.NOT_APPLIED, observed={"name": name})


def _group_delete(entry: AuditEntry, client: SegmentClient) -> ReadBack:
    try:
        client.get_user_group(entry.group_id)
    except NotFound:
        return ReadBack(Resolution.APPLIED, observed={"exists": False})
    return ReadBack(Resolution.NOT_APPLIED, observed={"exists": True})


READERS: dict[str, Callable[[AuditEntry, SegmentClient], ReadBack]] = {
    Action.MEMBERS_ADD: _members_add,
    Action.MEMBERS_REMOVE: _members_remove,
    Action.MEMBERS_REPLACE: _members_replace,
    Action.PERMISSIONS_ADD: _permissions_add,
    Action.PERMISSIONS_REPLACE: _permissions_replace,
    Action.GROUP_CREATE: _group_create,
    Action.GROUP_RENAME: _group_rename,
    Action.GROUP_DELETE: _group_delete,
}


def reconcile_entry(entry: AuditEntry, *, by: Any = None, client: SegmentClient | None = None) -> AuditEntry:
    """Read back what an unknown change touched and record the resolution once.

    Returns the entry as stored afterwards. A failed read leaves it unresolved (logged).
    """
    if not entry.is_unresolved or entry.action not in READERS:
        return entry
    client = client or get_client()
    read_at = timezone.now()
    try:
        found = READERS[entry.action](entry, client)
    except SegmentError as exc:
        logger.warning("Could not reconcile audit entry #%s yet: %s", entry.pk, exc)
        return entry
    evidence = {
        "read_at": read_at.isoformat(),
        "applied": found.applied,
        "not_applied": found.not_applied,
        **found.observed,
    }
    AuditEntry.objects.resolve(
        entry.pk,
        resolution=found.resolution,
        resolved_at=timezone.now(),
        resolved_by=actor_name(by) if by is not None else SYSTEM_ACTOR,
        evidence=evidence,
    )
    entry = AuditEntry.objects.get(pk=entry.pk)
    logger.info("Reconciled audit entry #%s: %s", entry.pk, entry.resolution)
    if entry.access_request_id:
        settle_access_request(entry)
    return entry


def settle_access_request(entry: AuditEntry) -> None:
    """Move the access request that this provisioning entry belongs to on to its outcome."""
    if entry.action != Action.MEMBERS_ADD or entry.access_request_id is None:
        return
    status = {
        AuditEntry.Status.SUCCEEDED: AccessRequest.Status.PROVISIONED,
        AuditEntry.Status.FAILED: AccessRequest.Status.PROVISIONING_FAILED,
        AuditEntry.Status.REFUSED: AccessRequest.Status.PROVISIONING_FAILED,
    }.get(entry.status)
    if entry.status == AuditEntry.Status.UNKNOWN:
        status = {
            Resolution.APPLIED: AccessRequest.Status.PROVISIONED,
            Resolution.NOT_APPLIED: AccessRequest.Status.PROVISIONING_FAILED,
        }.get(entry.resolution, AccessRequest.Status.OUTCOME_UNKNOWN)
    if status is None:
        return
    error = (
        "" if status == AccessRequest.Status.PROVISIONED else entry.error.partition(": ")[2] or entry.error
    )
    if entry.resolution == Resolution.NOT_APPLIED:
        error = "Segment did not confirm the addition and reading back showed it was not applied."
    access_request = entry.access_request
    try:
        transition(
            access_request,
            to=status,
            from_=[*AccessRequest.IN_FLIGHT, AccessRequest.Status.OUTCOME_UNKNOWN],
            provisioning_entry=entry,
            provisioning_error=error,
        )
    except ConcurrentChange:
        logger.info("Access request #%s had moved on already", access_request.pk)


def abandoned_before() -> Any:
    """Pending entries older than this were left by a process that died: no request lives so long."""
    seconds = max(60.0, settings.SEGMENT_REQUEST_DEADLINE * 3)
    return timezone.now() - timedelta(seconds=seconds)


def is_abandoned(entry: AuditEntry) -> bool:
    return entry.status == AuditEntry.Status.PENDING and entry.created_at < abandoned_before()


def mark_abandoned(entry: AuditEntry) -> AuditEntry:
    """Complete an entry left pending by a dead process as unknown (it may have been sent)."""
    complete(AuditRecord(entry=entry), AuditEntry.Status.UNKNOWN, RuntimeError(STOPPED))
    return AuditEntry.objects.get(pk=entry.pk)


@dataclass(frozen=True)
class ReconcileRun:
    abandoned: int
    resolved: dict[str, int]
    still_unknown: int
    requests_recovered: int


def reconcile_changes(*, client: SegmentClient | None = None) -> ReconcileRun:
    """Resolve every open outcome: entries left pending by dead processes and unknown ones.

    Access requests stuck between approval and provisioning with nothing sent are marked
    failed (so Retry is offered). Safe to run repeatedly and concurrently with the site.
    """
    client = client or get_client()
    abandoned = 0
    for entry in AuditEntry.objects.filter(
        status=AuditEntry.Status.PENDING, created_at__lt=abandoned_before()
    ):
        if entry.action in READERS:
            mark_abandoned(entry)
        else:  # a local action that sends nothing: its process died before it was done
            complete(AuditRecord(entry=entry), AuditEntry.Status.FAILED, RuntimeError(STOPPED))
        abandoned += 1
    resolved: dict[str, int] = {}
    still_unknown = 0
    for entry in AuditEntry.objects.unresolved().order_by("created_at"):
        entry = reconcile_entry(entry, client=client)
        if entry.resolution:
            resolved[entry.resolution] = resolved.get(entry.resolution, 0) + 1
        else:
            still_unknown += 1
    return ReconcileRun(abandoned, resolved, still_unknown, recover_stuck_requests())


def recover_stuck_requests() -> int:
    """Approved requests whose provisioning never recorded an outcome: settle them from the entry
    their provisioning wrote (found by its submission key), or mark them failed when nothing was sent."""
    recovered = 0
    for access_request in AccessRequest.objects.stuck(before=abandoned_before()):
        key = access_request.provisioning_key
        entry = AuditEntry.objects.filter(submission_key=key).first() if key else None
        if entry is None:
            try:
                transition(
                    access_request,
                    to=AccessRequest.Status.PROVISIONING_FAILED,
                    from_=AccessRequest.IN_FLIGHT,
                    provisioning_error="Provisioning was interrupted before anything was sent to Segment.",
                )
            except ConcurrentChange:
                continue
        elif entry.status != AuditEntry.Status.PENDING:
            settle_access_request(entry)
        else:
            continue
        recovered += 1
    return recovered
