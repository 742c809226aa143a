"""What an audit entry's `details` hold, one schema per action, and how they are shown.

Services build details with `details_for(action, ...)`, which refuses a field the action's
schema does not name; the audit entry page lays them out with `detail_sections(entry)`.
Reconciliation reads the same fields to know what a change touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from groups_app.models import AuditEntry, MirrorRole, SyncRun
from groups_app.services.groups import cached_resource_names
from groups_app.services.workspace import is_privileged_role

Action = AuditEntry.Action

# The fields each action may record, with how the entry page shows each: a label and a kind
# ("emails", "permissions", "text"). Fields without a label are kept for reconciliation only.
_EMAILS_ON_FAILURE = {
    "applied_emails": ("Applied before the failure", "emails"),
    "unconfirmed_emails": ("Not confirmed by Segment", "emails"),
}
SCHEMAS: dict[str, dict[str, tuple[str, str] | None]] = {
    Action.MEMBERS_ADD: {
        "emails": ("Sent to Segment", "emails"),
        "already_members": ("Already members", "emails"),
        "added_users": ("Added (workspace users)", "emails"),
        "invited": ("Invited (not yet workspace users)", "emails"),
        "split_unknown": None,
        **_EMAILS_ON_FAILURE,
    },
    Action.MEMBERS_REMOVE: {"emails": ("Removed", "emails"), **_EMAILS_ON_FAILURE},
    Action.MEMBERS_REPLACE: {
        "emails": None,
        "to_add": ("Added", "emails"),
        "to_remove": ("Removed", "emails"),
        "unchanged_count": ("Unchanged", "text"),
        "fingerprint": None,
    },
    Action.PERMISSIONS_ADD: {
        "before": ("Before", "permissions"),
        "added": ("Granted", "permissions"),
        "after": ("After", "permissions"),
    },
    Action.PERMISSIONS_REPLACE: {
        "added": ("Granted", "permissions"),
        "removed": ("Revoked", "permissions"),
        "unchanged": ("Unchanged", "permissions"),
        "wanted": None,
        "fingerprint": None,
    },
    Action.PERMISSIONS_PROPOSE: {
        "added": ("Proposed grants", "permissions"),
        "joined_since_privileged": ("Joined since the group last granted a privileged role", "emails"),
        "member_count": ("Members when proposed", "text"),
    },
    Action.PROPOSAL_APPROVE: {"added": ("Approved grants", "permissions"), "proposal": None},
    Action.PROPOSAL_REJECT: {
        "reason": ("Reason", "text"),
        "added": ("Rejected grants", "permissions"),
        "proposal": None,
    },
    Action.GROUP_CREATE: {"name": ("Name", "text")},
    Action.GROUP_RENAME: {"old_name": ("Old name", "text"), "new_name": ("New name", "text")},
    Action.GROUP_DELETE: {
        "member_count": ("Members", "text"),
        "permissions": ("Permissions the group had", "permissions"),
    },
    Action.REQUEST_FILE: {
        "email": ("For", "text"),
        "justification": ("Justification", "text"),
        "needed_until": ("Needed until", "text"),
        "renewal": ("A renewal of time-bound access", "text"),
    },
    Action.REQUEST_APPROVE: {
        "email": ("For", "text"),
        "retry": ("Retry of a failed provisioning", "text"),
        "provisioned": ("Provisioned", "text"),
        "owner_approval": ("Approved as the group's owner; an Administrator must approve too", "text"),
    },
    Action.REQUEST_DENY: {"email": ("For", "text"), "reason": ("Reason", "text")},
    Action.REQUEST_CANCEL: {"email": ("For", "text")},
    Action.REQUEST_CLOSE: {"email": ("For", "text"), "reason": ("Reason", "text")},
    Action.REQUEST_EXPIRE: {
        "email": ("For", "text"),
        "removed": ("Membership removed", "text"),
        "superseded_by": ("The addition that replaced it", "text"),
    },
    Action.REVIEW_START: {
        "expected_count": ("Members Segment reported", "text"),
        "snapshot_count": ("Members read", "text"),
    },
    Action.REVIEW_COMPLETE: {"kept": ("Kept", "text"), "remove": ("To remove", "emails")},
    Action.REVIEW_ASSIGN: {"reviewer": ("Reviewer", "text"), "due": ("Due", "text")},
    Action.ACCOUNT_ROLE_GRANT: {
        "account": ("Account", "text"),
        "roles": ("Roles granted", "emails"),
        "source": ("Through", "text"),
        "before": ("Before", "emails"),
        "after": ("After", "emails"),
    },
    Action.ACCOUNT_ROLE_REMOVE: {
        "account": ("Account", "text"),
        "roles": ("Roles removed", "emails"),
        "source": ("Through", "text"),
        "before": ("Before", "emails"),
        "after": ("After", "emails"),
    },
    Action.ACCOUNT_PASSWORD_RESET: {"email": ("For", "text")},
    Action.API_TOKEN_CREATE: {
        "name": ("Token", "text"),
        "scope": ("Scope", "text"),
        "expires_at": ("Expires", "text"),
        "prefix": None,
    },
    Action.API_TOKEN_REVOKE: {"name": ("Token", "text"), "prefix": None},
    Action.ACCOUNT_CREATE: {
        "account": ("Account", "text"),
        "email": ("Email", "text"),
        "source": ("Through", "text"),
    },
    Action.ACCOUNT_CHANGE: {
        "account": ("Account", "text"),
        "before": ("Before", "text"),
        "after": ("After", "text"),
        "source": ("Through", "text"),
    },
    Action.ACCOUNT_PERMISSIONS: {
        "account": ("Account", "text"),
        "added": ("Granted", "emails"),
        "removed": ("Removed", "emails"),
        "before": ("Before", "emails"),
        "after": ("After", "emails"),
        "source": ("Through", "text"),
    },
    Action.ROLE_PERMISSIONS: {
        "role": ("Role", "text"),
        "added": ("Granted", "emails"),
        "removed": ("Removed", "emails"),
        "before": ("Before", "emails"),
        "after": ("After", "emails"),
        "source": ("Through", "text"),
    },
    Action.IDENTITY_LINK: {
        "account": ("Account", "text"),
        "issuer": ("Issuer", "text"),
        "subject": ("Subject", "text"),
        "email": ("Email asserted", "text"),
        "source": ("Through", "text"),
    },
    Action.IDENTITY_UNLINK: {
        "account": ("Account", "text"),
        "issuer": ("Issuer", "text"),
        "subject": ("Subject", "text"),
        "source": ("Through", "text"),
    },
    Action.OBSERVED: {
        "group_created": ("Group created", "text"),
        "group_deleted": ("Group deleted", "text"),
        "old_name": ("Old name", "text"),
        "new_name": ("New name", "text"),
        "added": ("Added", "emails"),
        "removed": ("Removed", "emails"),
        "permissions_before": ("Permissions before", "permissions"),
        "permissions_after": ("Permissions after", "permissions"),
        "previous_reading": ("Earlier reading", "text"),
        "reading": ("Reading that found it", "text"),
        "sync": ("Sync", "text"),
    },
    Action.OWNER_ADD: {
        "owner": ("Owner", "text"),
        "email": ("Email", "text"),
        "imported": ("Imported from a CSV", "text"),
        "line": ("CSV line", "text"),
    },
    Action.OWNER_REMOVE: {"owner": ("Owner", "text"), "email": ("Email", "text")},
    Action.CAMPAIGN_START: {
        "name": ("Campaign", "text"),
        "scope": ("Groups", "text"),
        "group_count": ("Groups covered", "text"),
        "reviewer": ("Reviewer", "text"),
        "due": ("Due", "text"),
    },
    Action.GROUP_DESCRIBE: {"description": ("Description", "text"), "purpose": ("Purpose", "text")},
    Action.UNDO: {
        "undoes": ("Undoes entry", "text"),
        "complete": ("Every step done or filed", "text"),
        "group_id": ("Re-created as group", "text"),
        "steps": None,
    },
    Action.ACCESS_END_SET: {
        "email": ("For", "text"),
        "needed_until": ("Ends after", "text"),
        "addition": ("The addition's entry", "text"),
    },
    Action.ACCESS_RENEW: {
        "email": ("For", "text"),
        "needed_until_before": ("Ended after", "text"),
        "needed_until": ("Now ends after", "text"),
        "reason": ("Reason", "text"),
    },
    Action.ACCESS_LET_EXPIRE: {"email": ("For", "text")},
    Action.REFUSALS_OVER_LIMIT: {
        "refused": ("Refused attempts not recorded one by one", "text"),
        "limit_per_minute": ("Recorded one by one per minute", "text"),
        "from": ("From", "text"),
        "until": ("Until", "text"),
    },
}
# Any action refused by a URL's role check records where it was tried.
COMMON = {"path": ("Address", "text")}
# Fields not shown when the named fields say the same more precisely.
SUPERSEDED = {Action.MEMBERS_ADD: {"emails": ("added_users", "invited")}}


@dataclass(frozen=True)
class DetailSection:
    label: str
    kind: str
    value: Any


def details_for(action: str, **values: Any) -> dict[str, Any]:
    """An action's details, checked against its schema.

    Raises:
        ValueError: a field the action's schema does not name (a programming error).
    """
    allowed = SCHEMAS[action].keys() | COMMON.keys()
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"{action} details have no field {', '.join(sorted(unknown))}")
    return values


def detail_sections(
    entry: AuditEntry, *, resource_names: dict[tuple[str, str], str] | None = None
) -> list[DetailSection]:
    """The entry's details in its schema's order, as labelled sections (empty values left out).

    A change observed outside Group Admin is laid out as what changed (see `observed_change`).
    """
    if entry.action == Action.OBSERVED:
        return observed_sections(observed_change(entry, resource_names=resource_names))
    schema = {**SCHEMAS.get(entry.action, {}), **COMMON}
    details = entry.details or {}
    sections = []
    superseded = SUPERSEDED.get(entry.action, {})
    for name, shown in schema.items():
        value = details.get(name)
        if shown is None or value in (None, "", [], {}):
            continue
        if any(details.get(other) for other in superseded.get(name, ())):
            continue
        label, kind = shown
        if kind == "text" and isinstance(value, bool):
            value = "yes" if value else "no"
        sections.append(DetailSection(label, kind, value))
    return sections


# --- changes observed outside Group Admin --------------------------------------------------------
# The mirror records what it read (`_record_unexplained` in services/mirror.py): emails added and
# removed, the permission set before and after, names, and its two readings. People read them as
# what was granted and revoked, by name, with a privileged grant called out.

GrantKey = tuple[str, str, str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class ObservedChange:
    """What one "observed" entry found changed in one group, ready to show or mail."""

    entry_id: int
    group_id: str
    group_name: str
    created: bool = False
    deleted: bool = False
    old_name: str = ""
    new_name: str = ""
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    granted: tuple[dict[str, Any], ...] = ()
    revoked: tuple[dict[str, Any], ...] = ()
    before: tuple[dict[str, Any], ...] | None = None
    after: tuple[dict[str, Any], ...] | None = None
    previous_reading: datetime | None = None
    reading: datetime | None = None
    sync_id: int | None = None

    @property
    def privileged_grants(self) -> list[str]:
        """Names of the privileged roles (PRIVILEGED_ROLES) this change granted, each once."""
        return _unique(p["roleName"] for p in self.granted if is_privileged_role(p["roleName"]))

    @property
    def summary(self) -> str:
        """One line: "Observed outside Group Admin in Admins: granted Workspace Owner; added a@x.org"."""
        parts = []
        if self.created:
            parts.append("group created")
        if self.deleted:
            parts.append("group deleted")
        if self.old_name:
            parts.append(f"renamed from {self.old_name}")
        privileged = self.privileged_grants
        if privileged:
            parts.append(f"granted {', '.join(privileged)}")
        others = [r for r in _unique(p["roleName"] for p in self.granted) if r not in privileged]
        if others:
            parts.append(f"{'also ' if privileged else ''}granted {', '.join(others)}")
        if self.revoked:
            parts.append(f"revoked {', '.join(_unique(p['roleName'] for p in self.revoked))}")
        if self.added:
            parts.append(f"added {_some(self.added)}")
        if self.removed:
            parts.append(f"removed {_some(self.removed)}")
        if not parts and self.after is not None:
            parts.append("permissions changed")
        return f"Observed outside Group Admin in {self.group_name}: {'; '.join(parts) or 'changed'}"


def observed_change(
    entry: AuditEntry, *, resource_names: dict[tuple[str, str], str] | None = None
) -> ObservedChange:
    """Read an "observed" entry's details: grants and revocations apart, role names from the
    mirror when the entry has only an id, resource names where known (`resource_names`, by
    default the names cached by the group pages: no upstream call)."""
    if resource_names is None:
        resource_names = cached_resource_names()
    details = entry.details or {}
    before = _descriptions(details.get("permissions_before"))
    after = _descriptions(details.get("permissions_after"))
    _name_roles([*(before or ()), *(after or ())])
    _name_resources([*(before or ()), *(after or ())], resource_names)
    granted: tuple[dict[str, Any], ...] = ()
    revoked: tuple[dict[str, Any], ...] = ()
    if after is not None:
        granted = _regroup(after, exclude=_grant_keys(before or ()))
        revoked = _regroup(before or (), exclude=_grant_keys(after))
    sync_id = details.get("sync") if isinstance(details.get("sync"), int) else None
    return ObservedChange(
        entry_id=entry.pk,
        group_id=entry.group_id,
        group_name=entry.group_name or entry.group_id,
        created=bool(details.get("group_created")),
        deleted=bool(details.get("group_deleted")),
        old_name=str(details.get("old_name") or ""),
        new_name=str(details.get("new_name") or ""),
        added=tuple(str(e) for e in details.get("added") or ()),
        removed=tuple(str(e) for e in details.get("removed") or ()),
        granted=granted,
        revoked=revoked,
        before=before,
        after=after,
        previous_reading=_moment(details.get("previous_reading")),
        reading=_moment(details.get("reading")),
        sync_id=sync_id,
    )


def observed_sections(change: ObservedChange) -> list[DetailSection]:
    """The entry page's sections for an observed change (empty ones left out)."""
    sections = []
    if change.privileged_grants:
        roles = ", ".join(change.privileged_grants)
        sections.append(
            DetailSection(
                "Privileged role granted",
                "callout",
                f"{roles} was granted to this group outside Group Admin, without its rules or a second "
                "Administrator. Check who did it and whether it should stay.",
            )
        )
    if change.created:
        sections.append(DetailSection("Group created", "text", "yes"))
    if change.deleted:
        sections.append(DetailSection("Group deleted", "text", "yes"))
    if change.old_name:
        sections.append(DetailSection("Renamed", "text", f"from {change.old_name} to {change.new_name}"))
    pairs = [
        ("Added", "emails", change.added),
        ("Removed", "emails", change.removed),
        ("Granted", "permissions", change.granted),
        ("Revoked", "permissions", change.revoked),
    ]
    if change.deleted:
        pairs.append(("Permissions the group had", "permissions", change.before))
    elif change.after is not None and not change.created:  # (a new group's are all granted)
        pairs += [
            ("Permissions before", "permissions", change.before),
            ("Permissions after", "permissions", change.after),
        ]
    sections += [DetailSection(label, kind, list(value)) for label, kind, value in pairs if value]
    if change.previous_reading:
        sections.append(DetailSection("Earlier reading", "time", change.previous_reading))
    if change.reading:
        sections.append(DetailSection("Reading that found it", "time", change.reading))
    if change.sync_id is not None:
        run = SyncRun.objects.filter(pk=change.sync_id).first()  # None once pruned
        sections.append(DetailSection("Sync", "sync", {"id": change.sync_id, "run": run}))
    return sections


def grant_lines(descriptions: Iterable[dict[str, Any]]) -> list[str]:
    """Grants as text lines for mail: "Workspace Owner on WORKSPACE My Workspace (ws1) [env=prod]"."""
    lines = []
    for permission in descriptions:
        resources = [_resource_text(r) for r in permission.get("resources") or ()]
        lines.append(f"{permission['roleName']} on {', '.join(resources) or 'no resources'}")
    return lines


def _resource_text(resource: dict[str, Any]) -> str:
    name = resource.get("name")
    text = (
        f"{resource.get('type', '')} {name} ({resource.get('id', '')})"
        if name
        else (f"{resource.get('type', '')} {resource.get('id', '')}")
    )
    labels = resource.get("labels") or ()
    if labels:
        text += " [" + ", ".join(f"{label.get('key')}={label.get('value')}" for label in labels) + "]"
    return text


def _descriptions(value: Any) -> tuple[dict[str, Any], ...] | None:
    """Stored permission descriptions, copied (they are filled in with names), or None if absent."""
    if not isinstance(value, list):
        return None
    found = []
    for item in value:
        if not isinstance(item, dict):
            continue
        resources = [dict(r) for r in item.get("resources") or () if isinstance(r, dict)]
        role_id = str(item.get("roleId") or "")
        found.append(
            {**item, "roleId": role_id, "roleName": str(item.get("roleName") or ""), "resources": resources}
        )
    return tuple(found)


def _name_roles(descriptions: list[dict[str, Any]]) -> None:
    """A role recorded only by its id (unknown at the time) is named from the mirror's roles."""
    unnamed = [d for d in descriptions if not d["roleName"] or d["roleName"] == d["roleId"]]
    if not unnamed:
        return
    names = dict(
        MirrorRole.objects.filter(role_id__in={d["roleId"] for d in unnamed}).values_list("role_id", "name")
    )
    for description in unnamed:
        description["roleName"] = names.get(description["roleId"]) or description["roleId"]


def _name_resources(descriptions: list[dict[str, Any]], names: dict[tuple[str, str], str]) -> None:
    for description in descriptions:
        for resource in description["resources"]:
            key = (resource.get("type"), resource.get("id"))
            if not resource.get("name") and key in names:
                resource["name"] = names[key]


def _grant_key(role_id: str, resource: dict[str, Any] | None) -> GrantKey:
    if resource is None:
        return role_id, "", "", frozenset()
    labels = frozenset(
        (str(label.get("key")), str(label.get("value")))
        for label in resource.get("labels") or ()
        if isinstance(label, dict)
    )
    return role_id, str(resource.get("type", "")), str(resource.get("id", "")), labels


def _grant_keys(descriptions: Iterable[dict[str, Any]]) -> set[GrantKey]:
    keys = set()
    for description in descriptions:
        resources = description["resources"] or [None]
        keys.update(_grant_key(description["roleId"], r) for r in resources)
    return keys


def _regroup(descriptions: Iterable[dict[str, Any]], *, exclude: set[GrantKey]) -> tuple[dict[str, Any], ...]:
    """The (role, resource) grants of `descriptions` not in `exclude`, grouped by role again."""
    grouped: dict[str, dict[str, Any]] = {}
    for description in descriptions:
        role_id = description["roleId"]
        if not description["resources"]:
            if _grant_key(role_id, None) not in exclude:
                grouped.setdefault(role_id, {**description, "resources": []})
            continue
        for resource in description["resources"]:
            if _grant_key(role_id, resource) in exclude:
                continue
            grouped.setdefault(role_id, {**description, "resources": []})["resources"].append(resource)
    return tuple(grouped.values())


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _some(emails: tuple[str, ...], shown: int = 3) -> str:
    more = len(emails) - shown
    return ", ".join(emails[:shown]) + (f" and {more} more" if more > 0 else "")
