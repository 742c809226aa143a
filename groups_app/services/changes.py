"""The change pipeline: the one path every mutation of the workspace takes.

A mutating service is its own decision and one client call::

    with change_attempt(actor=actor, action=Action.GROUP_RENAME, permission=MANAGE_GROUPS,
                        group_id=group_id) as attempt:
        name = checked_name(name)                 # InvalidInput: a refused entry
        group = client.get_user_group(group_id)   # the one read; a failure: a failed entry
        attempt.describe(summary=..., group=group, details=details_for(...))
        return attempt.send(lambda: client.update_user_group(group_id, name), submission_key=key)

Every attempt leaves exactly one audit entry:

- refused: a rule stopped it before anything was sent (role, input, stale preview,
  privileged group, self-change); the ServiceError is re-raised;
- failed: known not applied (4xx, 429, a failed read before sending, a connection that
  never opened); the SegmentError is re-raised;
- succeeded: Segment answered 2xx;
- unknown: sent, then no usable answer (timeout, 5xx, reset, a crash, part of a batched
  change). What it touched is read back at once when the deadline allows, and otherwise by
  `manage.py reconcile_changes`; `ChangeOutcomeUnknown` tells the caller what was found.
  Nothing is ever resent while its outcome is unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError

from groups_app.models import AuditEntry
from groups_app.roles import is_administrator
from groups_app.segment import OutcomeUnknown, SegmentClient, SegmentError, UserGroup, time_left
from groups_app.services.audit import AuditRecord, SystemActor, complete, record_refused, write_pending
from groups_app.services.errors import (
    ChangeOutcomeUnknown,
    DuplicateSubmission,
    NotAllowed,
    ServiceError,
)
from groups_app.services.groups import group_is_privileged
from groups_app.services.mirror import request_group_refresh
from groups_app.services.reconcile import is_abandoned, mark_abandoned, reconcile_entry

logger = logging.getLogger("groups_app.changes")

T = TypeVar("T")

ROLE_DENIED = "Your role does not allow this change."
PRIVILEGED_GROUP = (
    "{name} is a privileged group (it grants {roles}): only Administrators change it. Request access instead."
)
SELF_CHANGE = "You cannot add yourself to a group; request access instead, and another person will decide."
# Reading back an unknown outcome right away needs at least this much of the deadline left.
RECONCILE_MIN_SECONDS = 1.0


def two_person_rule_applies(actor: Any, *, approved: bool) -> bool:
    """Whether a privileged change by `actor` still needs someone else's approval.

    `approved` is that approval: an approved access request (its approver is never its
    requester) or an approved proposal. Scheduled jobs act on decisions already taken.
    """
    return settings.TWO_PERSON_RULE and not approved and not isinstance(actor, SystemActor)


class PrivilegedGroupRule(NotAllowed):
    """Only Administrators change the membership or permissions of a privileged group."""


class SelfChangeRule(NotAllowed):
    """Nobody adds themselves to a group directly."""


@dataclass
class ChangeAttempt:
    """One attempted change: what its audit entry records, and whether it was sent."""

    actor: Any
    action: str
    client: SegmentClient | None = None
    group_id: str = ""
    group_name: str = ""
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    access_request: Any = None
    review: Any = None
    record: AuditRecord | None = None

    @property
    def is_sent(self) -> bool:
        return self.record is not None

    @property
    def entry(self) -> AuditEntry | None:
        return self.record.entry if self.record else None

    def describe(
        self,
        *,
        summary: str,
        group: UserGroup | None = None,
        group_name: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Say what the change is, for its audit entry (before it is sent)."""
        self.summary = summary
        if group is not None:
            self.group_id, self.group_name = group.id, group.name
        if group_name is not None:
            self.group_name = group_name
        if details is not None:
            self.details = details

    def check_group_rules(self, group: UserGroup, *, adds_emails: Iterable[str] = ()) -> bool:
        """Apply the privileged-group and self-change rules; return whether the group is privileged.

        Raises:
            PrivilegedGroupRule: the group is privileged and the actor is not an Administrator.
            SelfChangeRule: the actor's own email is among the emails being added.
        """
        is_privileged = group_is_privileged(group)
        if is_privileged and not is_administrator(self.actor):
            roles = ", ".join(sorted({p.role_name for p in group.permissions if p.role_name}))
            raise PrivilegedGroupRule(
                PRIVILEGED_GROUP.format(name=group.name, roles=roles or "a privileged role")
            )
        own_email = (getattr(self.actor, "email", "") or "").strip().lower()
        if own_email and own_email in {email.lower() for email in adds_emails}:
            raise SelfChangeRule(SELF_CHANGE)
        return is_privileged

    def send(self, call: Callable[[], T], *, submission_key: str | None = None) -> T:
        """Commit the pending entry, make the upstream call, and record its outcome once.

        Raises:
            DuplicateSubmission: this form was already submitted (its outcome is on the error).
            SegmentError: the change failed and is known not applied.
            ChangeOutcomeUnknown: it was sent but not confirmed; reconciled if time allowed.
        """
        try:
            entry = write_pending(
                submission_key=submission_key,
                actor=self.actor,
                action=self.action,
                summary=self.summary,
                group_id=self.group_id,
                group_name=self.group_name,
                details=self.details,
                access_request=self.access_request,
                review=self.review,
            )
        except DuplicateSubmission as exc:
            raise _earlier_outcome(exc, self.client) from None
        self.record = AuditRecord(entry=entry)
        try:
            result = call()
        except SegmentError as exc:
            if isinstance(exc, OutcomeUnknown) or exc.completed_emails:
                raise self._unknown(exc) from exc
            complete(self.record, AuditEntry.Status.FAILED, exc)
            raise
        except DatabaseError as exc:  # Group Admin's own database (the in-process sandbox's): not Segment's
            complete(self.record, AuditEntry.Status.UNKNOWN, exc)
            raise
        except Exception as exc:
            logger.exception("The change %s #%s crashed after it was sent", self.action, entry.pk)
            raise self._unknown(exc) from exc
        except BaseException as exc:  # the process is stopping: the outcome is unknown
            complete(self.record, AuditEntry.Status.UNKNOWN, exc)
            raise
        complete(self.record, AuditEntry.Status.SUCCEEDED)
        return result

    def _unknown(self, exc: Exception) -> ChangeOutcomeUnknown:
        """Complete the entry as unknown and read back what it touched, if there is time."""
        assert self.record is not None
        complete(self.record, AuditEntry.Status.UNKNOWN, exc)
        entry = self.record.entry
        left = time_left()
        if left is None or left >= RECONCILE_MIN_SECONDS:
            entry = reconcile_entry(entry, by=self.actor, client=self.client)
        return ChangeOutcomeUnknown(entry)


def _earlier_outcome(exc: DuplicateSubmission, client: SegmentClient | None) -> ServiceError:
    """A resubmitted form: never resend; say what became of the first submission."""
    earlier = exc.entry
    if earlier is None:
        return exc
    if is_abandoned(earlier):
        earlier = reconcile_entry(mark_abandoned(earlier), by=None, client=client)
    elif earlier.is_unresolved:
        earlier = reconcile_entry(earlier, by=None, client=client)
    if earlier.status == AuditEntry.Status.UNKNOWN:
        return ChangeOutcomeUnknown(earlier, resubmitted=True)
    return DuplicateSubmission(exc.message, entry=earlier)


@contextmanager
def change_attempt(
    *,
    actor: Any,
    action: str,
    permission: str,
    group_id: str = "",
    group_name: str = "",
    client: SegmentClient | None = None,
    access_request: Any = None,
    review: Any = None,
) -> Iterator[ChangeAttempt]:
    """Authorize an attempted change and guarantee its one audit entry, whatever happens.

    Raises:
        NotAllowed: the actor's role does not allow `permission` (recorded as refused).
        Whatever the block raises, after recording it.
    """
    attempt = ChangeAttempt(
        actor=actor,
        action=action,
        client=client,
        group_id=group_id,
        group_name=group_name,
        access_request=access_request,
        review=review,
    )
    try:
        if actor is None or not actor.has_perm(permission):
            raise NotAllowed(ROLE_DENIED)
        yield attempt
    except ServiceError as exc:
        if not attempt.is_sent:
            _record_unsent(attempt, AuditEntry.Status.REFUSED, exc)
        raise
    except Exception as exc:
        if not attempt.is_sent:
            _record_unsent(attempt, AuditEntry.Status.FAILED, exc)
        raise
    finally:
        if attempt.is_sent:
            _refresh_touched_group(attempt)


def _record_unsent(attempt: ChangeAttempt, status: str, exc: Exception) -> None:
    """One complete entry for an attempt that never reached Segment."""
    fields = {
        "actor": attempt.actor,
        "action": attempt.action,
        "summary": f"{attempt.summary or AuditEntry.Action(attempt.action).label} (not sent)",
        "group_id": attempt.group_id,
        "group_name": attempt.group_name,
        "details": attempt.details,
        "access_request": attempt.access_request,
        "review": attempt.review,
    }
    if status == AuditEntry.Status.REFUSED:
        record_refused(reason=getattr(exc, "message", str(exc)), **fields)
        return
    entry = write_pending(**fields)
    complete(AuditRecord(entry=entry), status, exc)


def change_refused(*, actor: Any, action: str, reason: str, group_id: str = "", path: str = "") -> AuditEntry:
    """Record an attempt refused before it reached a service (a URL's role check)."""
    summary = f"{AuditEntry.Action(action).label} refused: {reason}"
    return record_refused(
        reason=reason,
        actor=actor,
        action=action,
        summary=summary,
        group_id=group_id,
        details={"path": path} if path else {},
    )


def _refresh_touched_group(attempt: ChangeAttempt) -> None:
    """Have the worker re-read the group a sent change touched, so the mirror (the list, People)
    shows it, and emails that were added are verified as users or invites."""
    record = attempt.record
    group_id = attempt.group_id or (record.group_id if record else "") or ""
    if not group_id:
        return
    emails = attempt.details.get("emails") if attempt.action == AuditEntry.Action.MEMBERS_ADD else None
    request_group_refresh(
        group_id,
        trigger=f"{attempt.action} #{record.entry.pk}" if record else attempt.action,
        verify_emails=emails or (),
    )
