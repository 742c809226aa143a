"""The view side of the change pipeline: submit a change, and turn what happened into a response.

`submit_change()` validates the form (an invalid POST is a refused attempt, audited), calls
the service, and places every outcome a person can act on next to the form: field errors,
a refused rule (with "request access" where that is the way), a duplicate submission, or an
outcome Segment did not confirm. Other upstream failures reach `SegmentErrorMiddleware`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from groups_app.models import AuditEntry
from groups_app.rules import book
from groups_app.rules.book import ROLE_DENIED
from groups_app.segment import ValidationFailed
from groups_app.services.changes import Changed, RuleRefused, change_refused
from groups_app.services.errors import (
    AwaitingApproval,
    ChangeOutcomeUnknown,
    DuplicateSubmission,
    InvalidInput,
    NotAllowed,
    StaleChange,
)

DUPLICATE_MESSAGE = "This form was already submitted; the change was not sent again."


def change_permission_required(permission: str, action: str) -> Callable:
    """Like `permission_required(raise_exception=True)` (an owner of the group passes for what
    owners may do), and a refused POST is audited."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            # The role, or owning the group (for what owners may do): one rule, in the book.
            if not book.may_act(request.user, permission, group_id=kwargs.get("group_id", "")):
                if request.method == "POST":
                    change_refused(
                        actor=request.user,
                        action=action,
                        reason=ROLE_DENIED,
                        group_id=kwargs.get("group_id", ""),
                        path=request.path,
                    )
                raise PermissionDenied(ROLE_DENIED)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


@dataclass
class Submission:
    """What became of one submitted change form."""

    form: forms.Form
    action: str = ""
    result: Any = None
    entry: AuditEntry | None = None  # the audit entry the change wrote
    is_done: bool = False
    refusal: NotAllowed | None = None
    uncertain: ChangeOutcomeUnknown | None = None
    stale: StaleChange | None = None  # the preview was out of date: `stale.preview` is the new one
    awaiting: AwaitingApproval | None = None  # filed for a second Administrator instead

    @property
    def may_have_changed(self) -> bool:
        """Whether the group may look different now (regions showing it should refresh)."""
        if self.is_done:
            return True
        return (
            self.uncertain is not None
            and self.uncertain.entry.resolution != AuditEntry.Resolution.NOT_APPLIED
        )

    @property
    def offers_request(self) -> bool:
        """An addition refused by a rule whose answer is an access request (privileged group,
        self-addition); never a removal or a permission change."""
        return (
            self.action == AuditEntry.Action.MEMBERS_ADD
            and isinstance(self.refusal, RuleRefused)
            and self.refusal.offers_request
        )

    @property
    def status(self) -> int:
        if self.uncertain is not None and self.uncertain.entry.is_unresolved:
            return 503
        return 422 if self.form.errors else 200


def submit_change(
    request: HttpRequest,
    form: forms.Form,
    *,
    action: str,
    call: Callable[[dict[str, Any]], Any],
    group_id: str = "",
    field_map: dict[str, str] | None = None,
) -> Submission:
    """On POST: validate, call the service with the cleaned data, and record what happened."""
    submission = Submission(form, action=action)
    if request.method != "POST":
        return submission
    if not form.is_valid():
        change_refused(
            actor=request.user,
            action=action,
            reason=form_error_text(form),
            group_id=group_id,
            path=request.path,
        )
        return submission
    try:
        outcome = call(form.cleaned_data)
        if isinstance(outcome, Changed):
            submission.result, submission.entry = outcome.result, outcome.entry
        else:
            submission.result = outcome
        submission.is_done = True
    except (InvalidInput, ValidationFailed) as exc:
        show_errors(form, exc, field_map)
    except StaleChange as exc:
        submission.stale = exc
    except AwaitingApproval as exc:
        submission.awaiting = exc
    except NotAllowed as exc:
        submission.refusal = exc
        form.add_error(None, exc.message)
    except DuplicateSubmission as exc:
        form.add_error(None, duplicate_message(exc))
    except ChangeOutcomeUnknown as exc:
        submission.uncertain = exc
        form.add_error(None, exc.message)
        if exc.may_resubmit and hasattr(form, "renew_submission_key"):
            form.renew_submission_key()
    return submission


def duplicate_message(exc: DuplicateSubmission) -> str:
    entry = exc.entry
    if entry is not None and entry.status == AuditEntry.Status.SUCCEEDED:
        return "This form was already submitted and the change was applied; it was not sent again."
    if entry is not None and entry.status == AuditEntry.Status.PENDING:
        return "This form was just submitted and is still being applied; it was not sent again."
    return DUPLICATE_MESSAGE


def form_error_text(form: forms.Form) -> str:
    """The form's errors as one line, for the audit entry of a refused attempt."""
    parts = []
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else field.replace("__all__", "form")
        parts.append(f"{label}: {' '.join(str(e) for e in errors)}")
    return "Invalid input. " + " ".join(parts)


def submit_preview(form: forms.Form, read: Callable[[], Any]) -> Any:
    """Run a preview (a read, not an attempt); input the service refuses goes next to its field."""
    try:
        return read()
    except InvalidInput as exc:
        show_errors(form, exc)
        return None


def show_errors(form, exc: InvalidInput | ValidationFailed, field_map: dict[str, str] | None = None) -> None:
    """Put each error next to its field; upstream fields like `emails.3` map to `emails`."""
    field_map = field_map or {}
    placed = False
    for field, message in exc.field_errors.items():
        name = field_map.get(field) or field_map.get(field.split(".")[0]) or field.split(".")[0]
        if name in form.fields:
            if isinstance(exc, ValidationFailed) and "." in field and name == "emails":
                message = _name_the_email(form, field, message)
            form.add_error(name, message)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


def _name_the_email(form, field: str, message: str) -> str:
    """Upstream says `emails.3`; people need to know which address that is."""
    try:
        index = int(field.split(".")[1])
        return f"{form.cleaned_data['emails'][index]}: {message}"
    except (KeyError, IndexError, ValueError, TypeError):
        return message
