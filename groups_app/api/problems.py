"""Errors of the API and the MCP server as RFC 9457 problem details, in one place.

Every failure a door can meet — the token, the scope, bad input, a rule of the rule book, the
per-token rate limit, Segment — becomes one `Problem`: a status, a title, a detail a person can
act on, field errors where input was refused, and, for an attempted change, its outcome and
the audit entry that records it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest, JsonResponse

from groups_app.middleware import describe_segment_error
from groups_app.models import AuditEntry
from groups_app.segment import NotFound, RateLimited, SegmentError, ValidationFailed
from groups_app.services.api_tokens import RateLimitExceeded
from groups_app.services.changes import RuleRefused
from groups_app.services.errors import (
    AwaitingApproval,
    ChangeOutcomeUnknown,
    DuplicateSubmission,
    InvalidInput,
    NotAllowed,
    ServiceError,
    StaleChange,
    TooManyRefusals,
)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://group-admin.invalid/problems/"


@dataclass
class Problem(Exception):
    """One RFC 9457 problem; `extensions` are members beside the standard ones."""

    status: int
    title: str
    detail: str
    kind: str = "about:blank"
    errors: dict[str, list[str]] = field(default_factory=dict)
    retry_after: int | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    def body(self, instance: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.kind if self.kind == "about:blank" else TYPE_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extensions)
        return body


def problem_response(request: HttpRequest, problem: Problem) -> JsonResponse:
    response = JsonResponse(problem.body(request.path), status=problem.status, content_type=PROBLEM_JSON)
    if problem.retry_after is not None:
        response["Retry-After"] = str(problem.retry_after)
    if problem.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="group-admin"'
    response["Cache-Control"] = "no-store"
    return response


UNAUTHENTICATED = Problem(
    401,
    "Not authenticated",
    "Send an API token as 'Authorization: Bearer <token>' (create one on the API tokens page).",
    kind="unauthenticated",
)


def entry_of(exc: Exception) -> AuditEntry | None:
    """The audit entry that records the change an error came from (the pipeline puts it on
    every error it raises)."""
    return getattr(exc, "audit_entry", None) or getattr(exc, "entry", None)


def _entry_members(entry: AuditEntry | None) -> dict[str, Any]:
    return {"audit_entry": entry.pk if entry is not None else None}


def problem_for(exc: Exception, *, request_id: str = "", is_change: bool = False) -> Problem | None:
    """The problem a service or upstream error means; None for anything else (a bug)."""
    outcome = {"outcome": "refused"} if is_change else {}
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, RateLimitExceeded):
        return Problem(429, "Too many calls", exc.message, kind="rate-limited", retry_after=exc.retry_after)
    if isinstance(exc, TooManyRefusals):
        return Problem(
            429,
            "Too many refused attempts",
            exc.message,
            kind="too-many-refusals",
            retry_after=exc.retry_after,
            extensions=outcome,
        )
    if isinstance(exc, InvalidInput):
        extensions = {**outcome, **(_entry_members(entry_of(exc)) if is_change else {})}
        return Problem(
            422,
            "Invalid input",
            exc.message,
            kind="invalid-input",
            errors={name: [message] for name, message in exc.field_errors.items()},
            extensions=extensions,
        )
    if isinstance(exc, ChangeOutcomeUnknown):
        entry = exc.entry
        return Problem(
            503 if entry.is_unresolved else 409,
            "Outcome unknown",
            exc.message,
            kind="outcome-unknown",
            extensions={
                "outcome": "unknown",
                "resolution": entry.resolution or None,
                "may_resubmit": exc.may_resubmit,
                **_entry_members(entry),
            },
        )
    if isinstance(exc, DuplicateSubmission):
        earlier = exc.entry
        return Problem(
            409,
            "Already submitted",
            "A change with this Idempotency-Key was already made; it was not sent again.",
            kind="duplicate",
            extensions={
                "outcome": earlier.status if earlier is not None else None,
                **_entry_members(earlier),
            },
        )
    if isinstance(exc, StaleChange):
        return Problem(409, "Changed meanwhile", exc.message, kind="stale", extensions=outcome)
    if isinstance(exc, AwaitingApproval):
        return Problem(202, "Filed for approval", exc.message, kind="filed", extensions={"outcome": "filed"})
    if isinstance(exc, NotAllowed):
        extensions = {**outcome, **(_entry_members(entry_of(exc)) if is_change else {})}
        if isinstance(exc, RuleRefused):
            extensions["rule"] = exc.decision.rule
        return Problem(403, "Refused", exc.message, kind="refused", extensions=extensions)
    if isinstance(exc, ServiceError):
        return Problem(400, "Refused", exc.message, kind="refused", extensions=outcome)
    if isinstance(exc, SegmentError):
        return _segment_problem(exc, request_id=request_id, is_change=is_change)
    return None


def _segment_problem(exc: SegmentError, *, request_id: str, is_change: bool) -> Problem:
    extensions: dict[str, Any] = {}
    if is_change:
        entry = entry_of(exc)
        extensions = {"outcome": entry.status if entry is not None else "failed", **_entry_members(entry)}
    if isinstance(exc, ValidationFailed):
        errors = {name: [message] for name, message in exc.field_errors.items()}
        return Problem(
            422,
            "Refused by Segment",
            exc.message,
            kind="upstream-invalid",
            errors=errors,
            extensions=extensions,
        )
    if isinstance(exc, NotFound):
        return Problem(404, "Not found", "That group does not exist in Segment.", kind="not-found")
    status, title, message = describe_segment_error(exc)
    retry_after = max(1, round(exc.retry_after)) if isinstance(exc, RateLimited) else None
    return Problem(status, title, message, kind="upstream", retry_after=retry_after, extensions=extensions)
