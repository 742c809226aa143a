"""Typed errors raised by the Segment client.

Every failure of a Public API call surfaces as one of these; callers never see
`requests` exceptions. Messages never contain the API token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class SegmentError(Exception):
    """A Public API call failed, or answered with something the client cannot read."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors or []
        # For calls split into several requests: emails confirmed applied, and emails whose
        # request failed or was never sent (a failed mutation may or may not have been applied).
        self.completed_emails: tuple[str, ...] = ()
        self.remaining_emails: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.message if self.status is None else f"{self.message} (HTTP {self.status})"


class AuthenticationFailed(SegmentError):
    """401/403: the token is missing, wrong, or lacks the scope for this call."""


class NotFound(SegmentError):
    """404: the group (or other resource) does not exist."""


class ValidationFailed(SegmentError):
    """422 (or 400): the API refused the input; `field_errors` maps field to message."""

    @property
    def field_errors(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        for error in self.errors:
            field = error.get("field")
            if field and field not in fields:
                fields[str(field)] = str(error.get("message") or "Invalid value.")
        return fields


class RateLimited(SegmentError):
    """429 that could not be retried in time; `retry_after` seconds from `retry_at`.

    The API guarantees a 429 was not performed.
    """

    def __init__(
        self, message: str, *, retry_after: float, retry_at: datetime, is_read: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.retry_at = retry_at
        self.is_read = is_read


class Unavailable(SegmentError):
    """5xx, a timeout or a connection failure: Segment did not answer usefully.

    Raised as such only when the request was not performed: a read, or a mutation that
    never left (connection refused, the deadline spent before sending). A mutation that
    was sent raises `OutcomeUnknown`.
    """


class DeadlineExceeded(Unavailable):
    """The caller's time budget was spent before the request could be sent (or resent)."""


class OutcomeUnknown(Unavailable):
    """A mutation was sent, then timed out, got a 5xx or lost its connection.

    Segment may or may not have applied it: read back what it touched before sending it again.
    """
