"""The sandbox API's paths, exactly as the Public API publishes them (note the singular
`/group/` of replace and remove)."""

from django.urls import path, re_path

from sandbox import api

app_name = "sandbox"

urlpatterns = [
    path("groups", api.groups, name="groups"),
    path("groups/<str:group_id>", api.group, name="group"),
    path("groups/<str:group_id>/users", api.group_users, name="group-users"),
    path("groups/<str:group_id>/invites", api.group_invites, name="group-invites"),
    path("groups/<str:group_id>/permissions", api.group_permissions, name="group-permissions"),
    path("group/<str:group_id>/users", api.group_users_by_email, name="group-users-by-email"),
    path("roles", api.roles, name="roles"),
    path("", api.workspace, name="workspace"),
    path("sources", api.sources, name="sources"),
    path("warehouses", api.warehouses, name="warehouses"),
    path("spaces", api.spaces, name="spaces"),
    path("functions", api.functions, name="functions"),
    re_path(r"^(?P<path>.*)$", api.unknown_path, name="unknown"),
]
