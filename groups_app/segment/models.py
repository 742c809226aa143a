"""Frozen dataclasses for the Public API's IAM objects, and their wire conversions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RESOURCE_TYPES = ("WORKSPACE", "SOURCE", "SPACE", "FUNCTION", "WAREHOUSE")


@dataclass(frozen=True)
class Label:
    key: str
    value: str
    description: str = ""

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Label:
        return cls(
            key=str(payload["key"]),
            value=str(payload["value"]),
            description=str(payload.get("description") or ""),
        )

    def to_payload(self) -> dict[str, str]:
        payload = {"key": self.key, "value": self.value}
        if self.description:
            payload["description"] = self.description
        return payload


@dataclass(frozen=True)
class Resource:
    id: str
    type: str
    labels: tuple[Label, ...] = ()

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Resource:
        return cls(
            id=str(payload["id"]),
            type=str(payload["type"]),
            labels=tuple(Label.from_payload(label) for label in payload.get("labels") or ()),
        )

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.labels:
            payload["labels"] = [label.to_payload() for label in self.labels]
        return payload


@dataclass(frozen=True)
class Permission:
    role_id: str
    role_name: str = ""
    resources: tuple[Resource, ...] = ()

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Permission:
        return cls(
            role_id=str(payload["roleId"]),
            role_name=str(payload.get("roleName") or ""),
            resources=tuple(Resource.from_payload(r) for r in payload.get("resources") or ()),
        )

    def to_payload(self) -> dict[str, Any]:
        return {
            "roleId": self.role_id,
            "resources": [resource.to_payload() for resource in self.resources],
        }


@dataclass(frozen=True)
class UserGroup:
    id: str
    name: str
    member_count: int
    permissions: tuple[Permission, ...] = ()

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> UserGroup:
        return cls(
            id=str(payload["id"]),
            name=str(payload["name"]),
            member_count=int(payload.get("memberCount") or 0),
            permissions=tuple(Permission.from_payload(p) for p in payload.get("permissions") or ()),
        )


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> User:
        return cls(
            id=str(payload["id"]),
            name=str(payload.get("name") or ""),
            email=str(payload["email"]),
        )


@dataclass(frozen=True)
class Role:
    id: str
    name: str
    description: str = ""

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Role:
        return cls(
            id=str(payload["id"]),
            name=str(payload["name"]),
            description=str(payload.get("description") or ""),
        )


@dataclass(frozen=True)
class Page[T]:
    """One page of a cursor-paginated listing. Cursors are opaque strings."""

    items: tuple[T, ...]
    current: str | None = None
    next: str | None = None
    previous: str | None = None
    total_entries: int | None = None

    @property
    def has_next(self) -> bool:
        return bool(self.next)

    @property
    def has_previous(self) -> bool:
        return bool(self.previous)
