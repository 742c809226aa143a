"""What an audit entry's `details` hold, one schema per action, and how they are shown.

Services build details with `details_for(action, ...)`, which refuses a field the action's
schema does not name; the audit entry page lays them out with `detail_sections(entry)`.
Reconciliation reads the same fields to know what a change touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from groups_app.models import AuditEntry

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
    Action.REQUEST_EXPIRE: {"email": ("For", "text"), "removed": ("Membership removed", "text")},
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
    },
    Action.ACCOUNT_ROLE_REMOVE: {
        "account": ("Account", "text"),
        "roles": ("Roles removed", "emails"),
        "source": ("Through", "text"),
    },
    Action.ACCOUNT_PASSWORD_RESET: {"email": ("For", "text")},
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


def detail_sections(entry: AuditEntry) -> list[DetailSection]:
    """The entry's details in its schema's order, as labelled sections (empty values left out)."""
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
