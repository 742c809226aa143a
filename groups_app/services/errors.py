"""Errors raised by services (upstream failures are the client's SegmentError subclasses)."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAllowed(ServiceError):
    """The actor's role does not allow this action."""


class InvalidInput(ServiceError):
    """The input was refused before anything was sent; `field_errors` maps field to message."""

    def __init__(self, message: str, field_errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.field_errors = field_errors or {}


class StaleChange(ServiceError):
    """The group changed since the preview was shown; `preview` is the new one."""

    def __init__(self, message: str, preview: Any) -> None:
        super().__init__(message)
        self.preview = preview


class AwaitingApproval(ServiceError):
    """The change was not made: it waits for a second Administrator (`proposal`)."""

    def __init__(self, message: str, proposal: Any) -> None:
        super().__init__(message)
        self.proposal = proposal


class DuplicateSubmission(ServiceError):
    """The same form was submitted twice; `entry` is the audit entry of the first submission."""

    def __init__(self, message: str, entry: Any) -> None:
        super().__init__(message)
        self.entry = entry


class ChangeOutcomeUnknown(ServiceError):
    """A change was sent but Segment did not confirm it; `entry` says what reading back found.

    Never resend it blindly: when the entry is resolved "not applied" the person may submit
    again (a new form); otherwise the group must be looked at first.
    """

    def __init__(self, entry: Any, *, resubmitted: bool = False) -> None:
        self.entry = entry
        self.resubmitted = resubmitted
        super().__init__(outcome_message(entry, resubmitted=resubmitted))

    @property
    def may_resubmit(self) -> bool:
        return self.entry.resolution == "not_applied"


def outcome_message(entry: Any, *, resubmitted: bool = False) -> str:
    """What a person needs to know about a change whose outcome Segment did not confirm."""
    start = (
        "This form was already submitted and Segment did not confirm it; it was not sent again. "
        if resubmitted
        else "Segment did not confirm the change. "
    )
    evidence = entry.evidence or {}
    if entry.resolution == "applied":
        return start + "Reading the group back shows it was applied."
    if entry.resolution == "not_applied":
        return start + "Reading the group back shows it was not applied; you can submit it again."
    if entry.resolution == "partly_applied":
        applied = ", ".join(evidence.get("applied") or []) or "some of it"
        missing = ", ".join(evidence.get("not_applied") or []) or "the rest"
        return (
            start + f"Reading the group back shows it was only partly applied: applied {applied}; "
            f"not applied {missing}. Check the group before changing it again."
        )
    return (
        start + "Its outcome is unknown and will be checked automatically; "
        "do not make it again until the audit log shows what happened."
    )


class TooManyRefusals(ServiceError):
    """The actor's refused attempts passed REFUSED_ATTEMPTS_PER_MINUTE: this one was refused too
    (for `reason`), counted rather than recorded one by one; `retry_after` seconds to wait."""

    def __init__(self, reason: str, *, retry_after: int) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(
            f"Too many refused attempts in a minute; try again in {retry_after} seconds. "
            f"This attempt was refused: {reason}"
        )
