"""Segment Public API client: a plain Python library that knows nothing of Django.

Which transport and settings a client gets is decided outside this package, by
`groups_app.services.segment_client.get_client`.
"""

from .client import SegmentClient, check_id, iterate_pages, normalize_emails
from .deadline import deadline, time_left
from .errors import (
    AuthenticationFailed,
    DeadlineExceeded,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    SegmentError,
    Unavailable,
    ValidationFailed,
)
from .models import (
    RESOURCE_TYPES,
    IamRole,
    Label,
    NamedResource,
    Page,
    Permission,
    Resource,
    UserGroup,
    WorkspaceUser,
)

__all__ = [
    "RESOURCE_TYPES",
    "AuthenticationFailed",
    "DeadlineExceeded",
    "IamRole",
    "Label",
    "NamedResource",
    "NotFound",
    "OutcomeUnknown",
    "Page",
    "Permission",
    "RateLimited",
    "Resource",
    "SegmentClient",
    "SegmentError",
    "Unavailable",
    "UserGroup",
    "ValidationFailed",
    "WorkspaceUser",
    "check_id",
    "deadline",
    "iterate_pages",
    "normalize_emails",
    "time_left",
]
