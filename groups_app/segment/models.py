"""Frozen dataclasses for the Public API's IAM objects, and their wire conversions.

Permissions round-trip losslessly: resource `labels` and any field the dashboard does not
edit (on a permission, a resource or a label) are kept in `extra` and written back as they
were read, so no read → write path can widen a grant by dropping what restricts it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

RESOURCE_TYPES = ("WORKSPACE", "SOURCE", "SPACE", "FUNCTION", "WAREHOUSE")

# Unknown fields as sorted (name, canonical JSON) pairs: hashable, comparable, and lossless.
Extra = tuple[tuple[str, str], ...]


def _extra(payload: Mapping[str, Any], known: frozenset[str]) -> Extra:
    return tuple(
        sorted((str(k), json.dumps(v, sort_keys=True)) for k, v in payload.items() if k not in known)
    )


def _with_extra(payload: dict[str, Any], extra: Extra) -> dict[str, Any]:
    for name, value in extra:
        payload.setdefault(name, json.loads(value))
    return payload


@dataclass(frozen=True)
class Label:
    key: str
    value: str
    extra: Extra = ()

    KNOWN = frozenset({"key", "value"})

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Label:
        return cls(key=str(payload["key"]), value=str(payload["value"]), extra=_extra(payload, cls.KNOWN))

    def to_payload(self) -> dict[str, Any]:
        return _with_extra({"key": self.key, "value": self.value}, self.extra)

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


@dataclass(frozen=True)
class Resource:
    id: str
    type: str
    labels: tuple[Label, ...] = ()
    extra: Extra = ()

    KNOWN = frozenset({"id", "type", "labels"})

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Resource:
        return cls(
            id=str(payload["id"]),
            type=str(payload["type"]),
            labels=tuple(Label.from_payload(label) for label in payload.get("labels") or ()),
            extra=_extra(payload, cls.KNOWN),
        )

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.labels:
            payload["labels"] = [label.to_payload() for label in self.labels]
        return _with_extra(payload, self.extra)

    @property
    def label_set(self) -> frozenset[tuple[str, str]]:
        return frozenset((label.key, label.value) for label in self.labels)

    def keeping_unedited_fields_of(self, current: Resource) -> Resource:
        """This resource as edited, with what the dashboard does not edit taken from `current`."""
        by_pair = {(label.key, label.value): label for label in current.labels}
        labels = tuple(by_pair.get((label.key, label.value), label) for label in self.labels)
        return replace(self, labels=labels, extra=self.extra or current.extra)


@dataclass(frozen=True)
class Permission:
    role_id: str
    role_name: str = ""
    resources: tuple[Resource, ...] = ()
    extra: Extra = ()

    KNOWN = frozenset({"roleId", "roleName", "resources"})

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Permission:
        return cls(
            role_id=str(payload["roleId"]),
            role_name=str(payload.get("roleName") or ""),
            resources=tuple(Resource.from_payload(r) for r in payload.get("resources") or ()),
            extra=_extra(payload, cls.KNOWN),
        )

    def to_payload(self) -> dict[str, Any]:
        payload = {
            "roleId": self.role_id,
            "resources": [resource.to_payload() for resource in self.resources],
        }
        return _with_extra(payload, self.extra)


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
class WorkspaceUser:
    """A user of the Segment workspace (not an account of this dashboard)."""

    id: str
    name: str
    email: str

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> WorkspaceUser:
        return cls(
            id=str(payload["id"]),
            name=str(payload.get("name") or ""),
            email=str(payload["email"]),
        )


@dataclass(frozen=True)
class IamRole:
    """A Segment IAM role that a group's permission grants (not a dashboard role)."""

    id: str
    name: str
    description: str = ""

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> IamRole:
        return cls(
            id=str(payload["id"]),
            name=str(payload["name"]),
            description=str(payload.get("description") or ""),
        )


@dataclass(frozen=True)
class NamedResource:
    """Something a permission can grant a role on, with the name people know it by."""

    id: str
    type: str  # one of RESOURCE_TYPES
    name: str


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
