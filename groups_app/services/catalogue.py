"""The catalogue of what people can request: each group with what it is for (kept in Group Admin),
what it grants (roles and resources by name, a Privileged badge) and who owns it.

Read from the mirror (no call to Segment per group); resource names come from the cached
listings of the workspace's resources, and show as ids when those cannot be read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from groups_app.models import AuditEntry, GroupAbout, MirrorGroup
from groups_app.rules import book
from groups_app.segment import SegmentError
from groups_app.services.audit import actor_name, audited
from groups_app.services.audit_details import details_for
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.grants import describe
from groups_app.services.groups import resource_catalog
from groups_app.services.mirror.selectors import mirrored_group, mirrored_roles
from groups_app.services.owners import owners_by_group
from groups_app.services.workspace import privileged_role_names

logger = logging.getLogger("groups_app.catalogue")
MAX_TEXT = 2000


@dataclass(frozen=True)
class CatalogueEntry:
    group_id: str
    name: str
    description: str
    purpose: str
    grants: tuple[dict[str, Any], ...]  # described permissions, resources named
    privileged_roles: tuple[str, ...]
    owners: tuple[str, ...]

    @property
    def is_privileged(self) -> bool:
        return bool(self.privileged_roles)


def catalogue_groups(*, q: str = "") -> QuerySet[MirrorGroup]:
    """The groups to list, by name; `q` matches the name or what the group is for."""
    groups = MirrorGroup.objects.order_by("name_key", "group_id")
    q = (q or "").strip()[:200]
    if q:
        about = GroupAbout.objects.filter(Q(description__icontains=q) | Q(purpose__icontains=q))
        groups = groups.filter(Q(name_key__contains=q.casefold()) | Q(group_id__in=about.values("group_id")))
    return groups


def _resource_names() -> dict[tuple[str, str], str]:
    try:
        return resource_catalog().names
    except SegmentError as exc:  # names are a convenience: ids still say what is granted
        logger.warning("Resource names unavailable for the catalogue: %s", exc)
        return {}


def catalogue_entries(groups: Iterable[MirrorGroup]) -> list[CatalogueEntry]:
    """The catalogue entries of these groups, in their order."""
    groups = list(groups)
    ids = [g.group_id for g in groups]
    about = {a.group_id: a for a in GroupAbout.objects.filter(group_id__in=ids)}
    owners = owners_by_group(ids)
    roles = mirrored_roles()
    names = _resource_names()
    entries = []
    for stored in groups:
        group = mirrored_group(stored)
        text = about.get(stored.group_id)
        entries.append(
            CatalogueEntry(
                group_id=group.id,
                name=group.name,
                description=text.description if text else "",
                purpose=text.purpose if text else "",
                grants=tuple(describe(p, roles, names) for p in group.permissions),
                privileged_roles=tuple(privileged_role_names(group.permissions, roles)),
                owners=tuple(o.label for o in owners.get(group.id, ())),
            )
        )
    return entries


def catalogue_entry(group_id: str) -> CatalogueEntry | None:
    """One group's entry, or None when the mirror does not hold it yet."""
    stored = MirrorGroup.objects.filter(group_id=group_id).first()
    return catalogue_entries([stored])[0] if stored is not None else None


def group_about(group_id: str) -> GroupAbout:
    return GroupAbout.objects.filter(group_id=group_id).first() or GroupAbout(group_id=group_id)


def group_about_set(
    *, actor: Any, group_id: str, group_name: str, description: str, purpose: str
) -> GroupAbout:
    """Write what a group is for (Administrators and its owners; audited).

    Raises:
        NotAllowed (audited as refused), InvalidInput (fields `description`, `purpose`).
    """
    description, purpose = (description or "").strip(), (purpose or "").strip()
    with audited(
        actor=actor,
        action=AuditEntry.Action.GROUP_DESCRIBE,
        summary=f"{actor_name(actor)} described {group_name or group_id} for the catalogue",
        group_id=group_id,
        group_name=group_name,
        details=details_for(
            AuditEntry.Action.GROUP_DESCRIBE,
            description=description.replace("\x00", "")[:MAX_TEXT],
            purpose=purpose.replace("\x00", "")[:MAX_TEXT],
        ),
    ):
        if not book.may_describe(actor, group_id=group_id):
            raise NotAllowed("Only Administrators and the group's owners describe it.")
        errors = {
            name: f"At most {MAX_TEXT} characters of plain text."
            for name, value in (("description", description), ("purpose", purpose))
            if len(value) > MAX_TEXT or "\x00" in value
        }
        if errors:
            raise InvalidInput(" ".join(errors.values()), errors)
        about = group_about(group_id)
        about.description, about.purpose = description, purpose
        about.updated_by_username = actor_name(actor)
        about.save()
    return about
