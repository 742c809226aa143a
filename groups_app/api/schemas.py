"""The shapes of the API's requests and answers (the OpenAPI document is generated from them)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from ninja import Field, Schema

Email = Field(..., max_length=320)


class ProblemOut(Schema):
    """RFC 9457 problem details (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: dict[str, list[str]] | None = Field(None, description="Messages per field of the input.")
    outcome: str | None = Field(
        None, description="For an attempted change: refused, failed, unknown (or the earlier one's)."
    )
    audit_entry: int | None = Field(None, description="The audit entry that records the attempt.")


class GroupRowOut(Schema):
    id: str
    name: str
    member_count: int = Field(..., description="Users and pending invites together.")
    role_names: list[str]
    resource_count: int
    is_privileged: bool


class GroupListOut(Schema):
    as_of: datetime | None = Field(..., description="When the mirror last read the whole workspace.")
    is_updating: bool
    total: int
    page: int
    page_count: int
    page_size: int
    items: list[GroupRowOut]


class LabelOut(Schema):
    key: str
    value: str


class ResourceOut(Schema):
    id: str
    type: str
    name: str = Field("", description="Read from Segment's listings; empty when unknown.")
    labels: list[LabelOut]


class PermissionOut(Schema):
    role_id: str
    role_name: str
    resources: list[ResourceOut]


class GroupOut(Schema):
    id: str
    name: str
    member_count: int
    user_count: int | None = Field(..., description="None when Segment did not say, or could not be read.")
    invite_count: int | None
    is_privileged: bool
    permissions: list[PermissionOut]
    problems: dict[str, str] = Field(..., description="Parts that could not be read, with why.")


class UserOut(Schema):
    id: str
    name: str
    email: str


class InviteOut(Schema):
    email: str


class UserPageOut(Schema):
    items: list[UserOut]
    next_cursor: str | None
    previous_cursor: str | None
    total: int | None


class InvitePageOut(Schema):
    items: list[InviteOut]
    next_cursor: str | None
    previous_cursor: str | None
    total: int | None


class EmailsIn(Schema):
    emails: list[str] = Field(..., min_length=1, max_length=1000)


class MembersAddIn(EmailsIn):
    until: date | None = Field(
        None, description="The memberships this addition makes end after this day (time-bound access)."
    )


class GroupRefOut(Schema):
    id: str
    name: str


class MembersAddOut(Schema):
    outcome: Literal["succeeded", "filed"]
    message: str
    group: GroupRefOut
    added: list[str] = Field(..., description="Workspace users added.")
    invited: list[str] = Field(..., description="Not yet workspace users: invited.")
    already_members: list[str]
    awaiting_approval: list[str] = Field(..., description="Filed as access requests for a second person.")
    audit_entry: int | None


class MembersRemoveOut(Schema):
    outcome: Literal["succeeded"]
    message: str
    group: GroupRefOut
    removed: list[str]
    audit_entry: int


class PersonIn(Schema):
    email: str = Email


class GrantResourceOut(Schema):
    id: str
    type: str
    labels: list[LabelOut]


class GrantOut(Schema):
    role_name: str
    resource: GrantResourceOut
    through_groups: list[str]


class PersonGroupOut(Schema):
    id: str
    name: str
    is_invite: bool
    is_privileged: bool
    role_names: list[str]


class AccessRequestOut(Schema):
    id: int
    group_id: str
    group_name: str
    email: str
    requester: str
    justification: str
    needed_until: date | None
    status: str
    status_label: str
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None
    provisioning_audit_entry: int | None
    provisioning_error: str | None


class PersonOut(Schema):
    email: str
    name: str | None
    is_known: bool = Field(..., description="The mirror lists them in at least one group.")
    is_user: bool
    as_of: datetime | None
    groups: list[PersonGroupOut]
    grants: list[GrantOut]
    open_requests: list[AccessRequestOut]


class AccessRequestPageOut(Schema):
    items: list[AccessRequestOut]
    next_cursor: int | None


class AccessRequestIn(Schema):
    group_id: str = Field(..., max_length=64)
    justification: str = Field(..., max_length=5000)
    emails: list[str] | None = Field(
        None, max_length=1000, description="Whom for; leave out to ask for yourself (others: Help desk)."
    )
    needed_until: date | None = Field(None, description="The access ends after this day.")


class AccessRequestFiledOut(Schema):
    outcome: Literal["filed", "nothing to file"]
    filed: list[AccessRequestOut]
    already_members: list[str]
    already_pending: list[AccessRequestOut]
    audit_entries: list[int]


class DenyIn(Schema):
    reason: str = Field(..., max_length=5000)


class DecisionOut(Schema):
    outcome: Literal["succeeded"]
    access_request: AccessRequestOut
    audit_entry: int | None
    provisioning_audit_entry: int | None


class AuditEntryOut(Schema):
    id: int
    created_at: datetime
    completed_at: datetime | None
    actor: str
    via: str | None = Field(..., description="“API token <name>” for changes made through the API or MCP.")
    action: str
    action_label: str
    group_id: str | None
    group_name: str | None
    summary: str
    status: str
    outcome: str
    resolution: str | None
    upstream_status: int | None
    error: str | None
    details: dict[str, Any]
    request_id: str | None


class AuditPageOut(Schema):
    items: list[AuditEntryOut]
    next_cursor: int | None
