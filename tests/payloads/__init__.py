"""Builders of Public API payloads and envelopes, shaped like Segment's documented responses."""

from __future__ import annotations

from typing import Any


def permission_payload(**overrides: Any) -> dict[str, Any]:
    payload = {
        "roleId": "roleSourceAdmin01",
        "roleName": "Source Admin",
        "resources": [{"id": "src9Xy7Wq2Lm", "type": "SOURCE", "labels": []}],
    }
    payload.update(overrides)
    return payload


def user_group_payload(**overrides: Any) -> dict[str, Any]:
    payload = {
        "id": "2Dve5ppWLkNXmkmCcNBqx5Y3lPE",
        "name": "Data Engineering",
        "memberCount": 3,
        "permissions": [permission_payload()],
    }
    payload.update(overrides)
    return payload


def user_payload(number: int = 1, **overrides: Any) -> dict[str, Any]:
    payload = {"id": f"user{number:05d}abc", "name": f"User {number}", "email": f"user{number}@example.com"}
    payload.update(overrides)
    return payload


def role_payload(**overrides: Any) -> dict[str, Any]:
    payload = {"id": "roleWorkspaceOwner1", "name": "Workspace Owner", "description": "Full access"}
    payload.update(overrides)
    return payload


def pagination_payload(
    current: str = "MA==", next: str | None = None, previous: str | None = None, total: int | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {"current": current}
    if next:
        payload["next"] = next
    if previous:
        payload["previous"] = previous
    if total is not None:
        payload["totalEntries"] = total
    return payload


def envelope(**data: Any) -> dict[str, Any]:
    return {"data": data}


def error_envelope(
    message: str, *, type: str = "error", field: str | None = None, **data: Any
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type, "message": message}
    if field:
        error["field"] = field
    if data:
        error["data"] = data
    return {"errors": [error]}
