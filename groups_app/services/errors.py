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


class DuplicateSubmission(ServiceError):
    """The same form was submitted twice; `entry` is the audit entry of the first submission."""

    def __init__(self, message: str, entry: Any) -> None:
        super().__init__(message)
        self.entry = entry
