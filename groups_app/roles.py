"""The dashboard's three roles (Django groups) and the permissions each carries.

The data migration `0002_roles` creates them; this module names them for the code.
"""

VIEWER = "Viewer"
HELP_DESK = "Help desk"
ADMINISTRATOR = "Administrator"

VIEW = "groups_app.view_groups"
CHANGE_MEMBERSHIP = "groups_app.change_membership"
HANDLE_ACCESS_REQUESTS = "groups_app.handle_access_requests"
MANAGE_GROUPS = "groups_app.manage_groups"
CHANGE_PERMISSIONS = "groups_app.change_permissions"
RUN_REVIEWS = "groups_app.run_reviews"

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    VIEWER: frozenset({VIEW}),
    HELP_DESK: frozenset({VIEW, CHANGE_MEMBERSHIP, HANDLE_ACCESS_REQUESTS}),
    ADMINISTRATOR: frozenset(
        {VIEW, CHANGE_MEMBERSHIP, HANDLE_ACCESS_REQUESTS, MANAGE_GROUPS, CHANGE_PERMISSIONS, RUN_REVIEWS}
    ),
}

# Strongest first: the role shown for a user who holds several.
ROLE_ORDER = (ADMINISTRATOR, HELP_DESK, VIEWER)


def role_label(user) -> str:
    """The role to show for a signed-in user."""
    if user.is_superuser:
        return "Superuser"
    names = {group.name for group in user.groups.all()}
    for role in ROLE_ORDER:
        if role in names:
            return role
    return "No role"


def is_administrator(user) -> bool:
    """Administrators (and scheduled jobs) may change privileged groups; Help desk may not."""
    return user is not None and user.has_perm(MANAGE_GROUPS)
