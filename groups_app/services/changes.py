"""The change pipeline: the one path every mutation of the workspace takes.

A mutating service is its own decision and one client call::

    with change_attempt(actor=actor, action=Action.GROUP_RENAME, permission=MANAGE_GROUPS,
                        group_id=group_id) as attempt:
        name = checked_name(name)                 # InvalidInput: a refused entry
        group = client.get_user_group(group_id)   # the one read; a failure: a failed entry
        attempt.describe(summary=..., group=group, details=details_for(...))
        attempt.check(group=group)                # the rule book, on what is about to be sent
        return attempt.send(lambda: client.update_user_group(group_id, name), submission_key=key)

Every attempt leaves exactly one audit entry:

- refused: a rule stopped it before anything was sent (role, input, stale preview,
  privileged group, self-change); the ServiceError is re-raised;
- filed for approval: the two-person rule wants a second person; nothing was sent, and the
  approvals layer files a request or a proposal (`SecondPersonNeeded`);
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError

from groups_app.models import AccessRequest, AuditEntry, ChangeProposal
from groups_app.roles import CHANGE_MEMBERSHIP, CHANGE_PERMISSIONS, MANAGE_GROUPS
from groups_app.rules import book
from groups_app.rules.book import Approval, Decision, ProposedChange, Verdict
from groups_app.segment import OutcomeUnknown, SegmentClient, SegmentError, UserGroup, time_left
from groups_app.services.audit import AuditRecord, complete, origin_var, record_refused, write_pending
from groups_app.services.errors import (
    ChangeOutcomeUnknown,
    DuplicateSubmission,
    InvalidInput,
    NotAllowed,
    ServiceError,
)
from groups_app.services.mirror import write_through
from groups_app.services.reconcile import is_abandoned, mark_abandoned, reconcile_entry

logger = logging.getLogger("groups_app.changes")

# Who may ask for an unconfirmed change to be read back: whoever may make that kind of change.
ACTION_PERMISSIONS = {
    AuditEntry.Action.MEMBERS_ADD: CHANGE_MEMBERSHIP,
    AuditEntry.Action.MEMBERS_REMOVE: CHANGE_MEMBERSHIP,
    AuditEntry.Action.MEMBERS_REPLACE: CHANGE_MEMBERSHIP,
    AuditEntry.Action.PERMISSIONS_ADD: CHANGE_PERMISSIONS,
    AuditEntry.Action.PERMISSIONS_REPLACE: CHANGE_PERMISSIONS,
    AuditEntry.Action.GROUP_CREATE: MANAGE_GROUPS,
    AuditEntry.Action.GROUP_RENAME: MANAGE_GROUPS,
    AuditEntry.Action.GROUP_DELETE: MANAGE_GROUPS,
}
# Reading back an unknown outcome right away needs at least this much of the deadline left.
RECONCILE_MIN_SECONDS = 1.0


class RuleRefused(NotAllowed):
    """A rule of the rule book refused the change; `decision` names the rule and the reason."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision

    @property
    def offers_request(self) -> bool:
        """Refused by a rule whose answer is an access request (privileged group, self-addition)."""
        return self.decision.rule in {"privileged_group", "self_change"}


class SecondPersonNeeded(ServiceError):
    """The two-person rule: this change waits for a second person's approval; nothing was sent.

    `change` holds the facts the book decided on (the addresses, the grants), so the approvals
    layer files exactly what was asked.
    """

    def __init__(self, decision: Decision, change: ProposedChange, entry: AuditEntry | None = None) -> None:
        super().__init__(decision.reason)
        self.decision = decision
        self.change = change
        self.entry = entry


@dataclass(frozen=True)
class Changed[T]:
    """What a change returns: its result, and the audit entry that records it."""

    result: T
    entry: AuditEntry


@dataclass
class ChangeAttempt:
    """One attempted change: what its audit entry records, and whether it was sent."""

    actor: Any
    action: str
    permission: str
    client: SegmentClient | None = None
    group_id: str = ""
    group_name: str = ""
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    approval: Approval | None = None
    review: Any = None
    record: AuditRecord | None = None
    unsent_entry: AuditEntry | None = None  # the entry of an attempt that was never sent
    is_checked: bool = False
    answer: Any = None  # Segment's answer to the change, once it confirmed it

    @property
    def is_sent(self) -> bool:
        return self.record is not None

    @property
    def entry(self) -> AuditEntry | None:
        return self.record.entry if self.record else None

    @property
    def access_request(self) -> AccessRequest | None:
        source = self.approval.source if self.approval else None
        return source if isinstance(source, AccessRequest) else None

    @property
    def proposal(self) -> ChangeProposal | None:
        source = self.approval.source if self.approval else None
        return source if isinstance(source, ChangeProposal) else None

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

    def check(
        self,
        *,
        group: UserGroup | None = None,
        adds: tuple[str, ...] | list[str] = (),
        new_members: tuple[str, ...] | list[str] = (),
        removes: tuple[str, ...] | list[str] = (),
        grants: tuple[str, ...] | list[str] = (),
    ) -> ProposedChange:
        """Ask the rule book about exactly what is about to be sent.

        Raises:
            RuleRefused: a rule refused it (recorded as refused).
            InvalidInput: an address was refused for its domain (shown next to the field).
            SecondPersonNeeded: it waits for a second person (recorded as filed for approval).
        """
        change = ProposedChange(
            actor=self.actor,
            permission=self.permission,
            group=group,
            adds=tuple(adds),
            new_members=tuple(new_members),
            removes=tuple(removes),
            grants=tuple(grants),
            approval=self.approval,
        )
        _raise_unless_allowed(book.decide(change), change)
        self.is_checked = True
        return change

    def send[T](
        self,
        call: Callable[[], T],
        *,
        submission_key: str | None = None,
        summary_on_success: Callable[[T], str] | None = None,
    ) -> Changed[T]:
        """Commit the pending entry, make the upstream call, and record its outcome once.

        `summary_on_success` words the completed entry from the result (what Segment reported).

        Raises:
            DuplicateSubmission: this form was already submitted (its outcome is on the error).
            SegmentError: the change failed and is known not applied.
            ChangeOutcomeUnknown: it was sent but not confirmed; reconciled if time allowed.
        """
        if not self.is_checked:
            raise RuntimeError(f"The change {self.action} was about to be sent without asking the rule book.")
        try:
            entry = write_pending(submission_key=submission_key, **self._entry_fields())
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
        if summary_on_success is not None:
            self.record.summary = summary_on_success(result)
        complete(self.record, AuditEntry.Status.SUCCEEDED)
        self.answer = result
        return Changed(result, self.record.entry)

    def _entry_fields(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "action": self.action,
            "summary": self.summary,
            "group_id": self.group_id,
            "group_name": self.group_name,
            "details": self.details,
            "access_request": self.access_request,
            "proposal": self.proposal,
            "review": self.review,
        }

    def _unknown(self, exc: Exception) -> ChangeOutcomeUnknown:
        """Complete the entry as unknown and read back what it touched, if there is time."""
        assert self.record is not None
        complete(self.record, AuditEntry.Status.UNKNOWN, exc)
        entry = self.record.entry
        origin = origin_var.get()
        if origin is not None:
            origin.unconfirmed_entry_ids.append(entry.pk)
        left = time_left()
        if left is None or left >= RECONCILE_MIN_SECONDS:
            entry = reconcile_entry(entry, by=self.actor, client=self.client)
        return ChangeOutcomeUnknown(entry)


def _raise_unless_allowed(decision: Decision, change: ProposedChange) -> None:
    if decision.verdict == Verdict.ALLOWED:
        return
    if decision.verdict == Verdict.NEEDS_SECOND_PERSON:
        raise SecondPersonNeeded(decision, change)
    if decision.field:
        raise InvalidInput(decision.reason, {decision.field: decision.reason})
    raise RuleRefused(decision)


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
    approval: Approval | None = None,
    review: Any = None,
) -> Iterator[ChangeAttempt]:
    """Authorize an attempted change and guarantee its one audit entry, whatever happens.

    Before anything is read, the rule book is asked about the actor alone (role, identity), so
    that nobody without the role causes an upstream read; the block then asks it about the
    whole change (`attempt.check`).

    Raises:
        RuleRefused: the actor may not make this change (recorded as refused).
        SecondPersonNeeded: it waits for a second person (recorded as filed for approval).
        Whatever the block raises, after recording it.
    """
    attempt = ChangeAttempt(
        actor=actor,
        action=action,
        permission=permission,
        client=client,
        group_id=group_id,
        group_name=group_name,
        approval=approval,
        review=review,
    )
    try:
        actor_only = ProposedChange(actor=actor, permission=permission, approval=approval, group_id=group_id)
        _raise_unless_allowed(book.decide(actor_only), actor_only)
        yield attempt
    except SecondPersonNeeded as exc:
        if not attempt.is_sent:
            exc.entry = _record_unsent(attempt, AuditEntry.Status.FILED, exc)
        exc.audit_entry = exc.entry
        raise
    except ServiceError as exc:
        if not attempt.is_sent:
            _record_unsent(attempt, AuditEntry.Status.REFUSED, exc)
        _carry_entry(exc, attempt)
        raise
    except Exception as exc:
        if not attempt.is_sent:
            _record_unsent(attempt, AuditEntry.Status.FAILED, exc)
        _carry_entry(exc, attempt)
        raise
    finally:
        if attempt.is_sent:
            _refresh_touched_group(attempt)


def _carry_entry(exc: Exception, attempt: ChangeAttempt) -> None:
    """Every error a change raises carries the audit entry that records it (`audit_entry`), so
    callers link exactly that entry and never look one up."""
    if getattr(exc, "audit_entry", None) is None:
        exc.audit_entry = attempt.entry or attempt.unsent_entry


def _record_unsent(attempt: ChangeAttempt, status: str, exc: Exception) -> AuditEntry:
    """One complete entry for an attempt that never reached Segment."""
    fields = attempt._entry_fields()
    label = "filed for approval" if status == AuditEntry.Status.FILED else "not sent"
    fields["summary"] = f"{attempt.summary or AuditEntry.Action(attempt.action).label} ({label})"
    if status == AuditEntry.Status.REFUSED:
        attempt.unsent_entry = record_refused(reason=getattr(exc, "message", str(exc)), **fields)
        return attempt.unsent_entry
    entry = write_pending(**fields)
    complete(AuditRecord(entry=entry), status, exc)
    attempt.unsent_entry = entry
    return entry


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
    """Keep the mirror (the list, People) right about the group a sent change touched.

    An addition is written through to the mirror before this runs: when Segment's answer (the
    group's member count) agrees with the mirror then, and the addition told its users and
    invites apart (it reads the group's invites when the mirror cannot), nothing is re-read. Otherwise the worker re-reads the group, once a
    minute at most (always when there are emails to verify); a change within that minute is
    left to the write-through and the next quick pass. A queue that cannot be reached costs
    only freshness: it never fails the change."""
    record = attempt.record
    group_id = attempt.group_id or (record.group_id if record else "") or ""
    if not group_id:
        return
    emails = attempt.details.get("emails") if attempt.action == AuditEntry.Action.MEMBERS_ADD else None
    # An addition whose invites could not be read back: the refresh tells them apart (invite ages).
    split_unknown = bool(record and record.details.get("split_unknown"))
    unverified = list(emails or ()) if split_unknown else []
    answer = getattr(attempt.answer, "group", attempt.answer)
    is_addition = attempt.action == AuditEntry.Action.MEMBERS_ADD and isinstance(answer, UserGroup)
    if is_addition and not unverified and write_through.confirmed_by_answer(group_id, answer.member_count):
        return
    write_through.refresh_soon(
        group_id,
        trigger=(f"{attempt.action} #{record.entry.pk}" if record else attempt.action)[:200],
        verify_emails=unverified,
    )


def unconfirmed_change_in_this_request() -> AuditEntry | None:
    """The latest change sent in the current request whose outcome Segment did not confirm, as
    stored now (reading back may have resolved it), or None."""
    origin = origin_var.get()
    if origin is None or not origin.unconfirmed_entry_ids:
        return None
    return AuditEntry.objects.filter(pk=origin.unconfirmed_entry_ids[-1]).first()


def entry_check_again(*, actor: Any, entry_id: int, client: SegmentClient | None = None) -> AuditEntry:
    """Read back now what an unconfirmed change touched, and record what was found (once).

    Anyone who may make that kind of change may ask; reading back sends nothing.

    Raises:
        InvalidInput: no such entry, or its outcome is not unknown.
        NotAllowed: the actor may not make changes of that kind.
    """
    entry = AuditEntry.objects.filter(pk=entry_id).first()
    if entry is None or entry.status != AuditEntry.Status.UNKNOWN:
        raise InvalidInput("Only a change whose outcome is unknown can be checked again.")
    permission = ACTION_PERMISSIONS.get(entry.action)
    if permission is None or actor is None or not actor.has_perm(permission):
        raise NotAllowed(book.ROLE_DENIED)
    if not entry.is_unresolved:
        return entry
    return reconcile_entry(entry, by=actor, client=client)
