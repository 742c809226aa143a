"""Read services: the list page (from the mirror), and the concurrent detail read."""

import json
import threading

import pytest
import responses
from responses import matchers

from groups_app.segment import IamRole, NotFound, Permission, Resource, UserGroup
from groups_app.services import groups as services
from tests.conftest import API
from tests.payloads import envelope, pagination_payload, role_payload, user_group_payload, user_payload

GROUP_ID = "2Dve5ppWLkNXmkmCcNBqx5Y3lPE"


def mock_groups(pages):
    """Register the /groups listing as consecutive pages of group payloads."""
    for number, groups in enumerate(pages):
        query = {"pagination.count": "200"}
        if number:
            query["pagination.cursor"] = f"c{number}"
        pagination = pagination_payload(
            current=f"c{number}", next=f"c{number + 1}" if number + 1 < len(pages) else None
        )
        responses.get(
            f"{API}/groups",
            match=[matchers.query_param_matcher(query)],
            json=envelope(userGroups=groups, pagination=pagination),
        )


def mock_roles():
    responses.get(
        f"{API}/roles",
        json=envelope(
            roles=[role_payload(id="roleSourceAdmin01", name="Source Admin (from roles)")],
            pagination=pagination_payload(),
        ),
    )


def mirror(*groups, roles=()):
    """Put groups (and roles) in the mirror as a sync would."""
    from django.utils import timezone

    from groups_app.models import MirrorGroup, MirrorRole
    from groups_app.services.mirror.selectors import permission_records

    for role in roles:
        MirrorRole.objects.create(role_id=role.id, name=role.name)
    for payload in groups:
        group = UserGroup.from_payload(payload)
        MirrorGroup.objects.create(
            group_id=group.id,
            name=group.name,
            name_key=group.name.casefold(),
            member_count=group.member_count,
            permissions=permission_records(group.permissions),
            read_at=timezone.now(),
        )


@pytest.mark.django_db
@responses.activate
def test_list_searches_sorts_and_pages_from_the_mirror_without_upstream_calls():
    mirror(
        user_group_payload(id="g1", name="Data Engineering", memberCount=5),
        user_group_payload(id="g2", name="Marketing", memberCount=50, permissions=[]),
        user_group_payload(id="g3", name="data science", memberCount=9),
        user_group_payload(id="g4", name="Metadata", memberCount=1),
        roles=[IamRole("roleSourceAdmin01", "Source Admin (from roles)")],
    )

    by_name = services.group_list(query="DATA")
    by_members = services.group_list(query="data", sort="members", descending=True, page_size=2)
    page_two = services.group_list(query="data", sort="members", descending=True, page=2, page_size=2)

    assert [r.group.name for r in by_name.rows] == ["Data Engineering", "data science", "Metadata"]
    assert [r.group.member_count for r in by_members.rows] == [9, 5]
    assert [r.group.member_count for r in page_two.rows] == [1]
    assert (
        page_two.total,
        page_two.page,
        page_two.page_count,
        page_two.first_index,
        page_two.last_index,
    ) == (3, 2, 2, 3, 3)
    assert by_name.rows[0].role_names == ("Source Admin (from roles)",)
    assert by_name.rows[0].resource_count == 1
    assert len(responses.calls) == 0  # responses refuses any call it was not told of: none was made


@pytest.mark.django_db
def test_list_clamps_page_beyond_the_end():
    mirror(user_group_payload(id="g1"))

    listing = services.group_list(page=99)

    assert listing.page == 1 and len(listing.rows) == 1


@pytest.mark.django_db
def test_list_of_an_empty_mirror_says_it_was_never_read():
    listing = services.group_list()

    assert listing.total == 0
    assert listing.freshness.is_empty and listing.freshness.as_of is None


def test_role_name_falls_back_to_payload_then_id():
    roles = {"r1": IamRole("r1", "Known")}

    assert services.role_name(Permission("r1", "Stale name"), roles) == "Known"
    assert services.role_name(Permission("r2", "From payload"), roles) == "From payload"
    assert services.role_name(Permission("r3"), roles) == "r3"


def test_permissions_view_sorts_roles_and_resources():
    group = UserGroup(
        "g1",
        "G",
        0,
        (
            Permission(
                "r2", "Zeta", (Resource("b", "SOURCE"), Resource("a", "SOURCE"), Resource("w", "FUNCTION"))
            ),
            Permission("r1", "alpha"),
        ),
    )

    views = services.group_permissions_view(group, {})

    assert [v.role_name for v in views] == ["alpha", "Zeta"]
    assert [r.id for r in views[1].resources] == ["w", "a", "b"]


@responses.activate
def test_detail_fetches_group_users_and_invites_concurrently(segment, db):
    barrier = threading.Barrier(3, timeout=5)

    def together(payload):
        def callback(request):
            barrier.wait()  # fails with BrokenBarrierError unless all three are in flight at once
            return 200, {}, json.dumps(payload)

        return callback

    mock_roles()
    services.roles_by_id(client=segment)
    responses.add_callback(
        "GET", f"{API}/groups/{GROUP_ID}", callback=together(envelope(userGroup=user_group_payload()))
    )
    responses.add_callback(
        "GET",
        f"{API}/groups/{GROUP_ID}/users",
        callback=together(envelope(users=[user_payload(1)], pagination=pagination_payload(total=1))),
    )
    responses.add_callback(
        "GET",
        f"{API}/groups/{GROUP_ID}/invites",
        callback=together(envelope(emails=["x@example.com"], pagination=pagination_payload(total=1))),
    )

    detail = services.group_detail(group_id=GROUP_ID, users_count=10, client=segment)

    assert detail.group.id == GROUP_ID
    assert detail.users.items[0].email == "user1@example.com"
    assert detail.invites.items == ("x@example.com",)
    assert detail.permissions[0].role_name == "Source Admin (from roles)"


@responses.activate
def test_detail_raises_not_found_for_unknown_group(segment, db):
    mock_roles()
    responses.get(
        f"{API}/groups/{GROUP_ID}", status=404, json={"errors": [{"type": "not-found", "message": "nope"}]}
    )
    responses.get(f"{API}/groups/{GROUP_ID}/users", status=404, json={"errors": []})
    responses.get(f"{API}/groups/{GROUP_ID}/invites", status=404, json={"errors": []})

    with pytest.raises(NotFound):
        services.group_detail(group_id=GROUP_ID, client=segment)


@pytest.mark.django_db
def test_detail_against_the_sandbox_reads_sequentially_in_process():
    from io import StringIO

    from django.core.management import call_command

    from groups_app.services.segment_client import get_client
    from sandbox.models import UserGroup as SandboxGroup

    call_command("seed_sandbox", "--groups", "3", "--users", "450", stdout=StringIO())
    group = SandboxGroup.objects.get(name="All Employees")

    detail = services.group_detail(group_id=group.id, users_count=50, invites_count=10)

    assert get_client().concurrent_requests is False
    assert detail.users.total_entries == group.memberships.count()
    assert len(detail.users.items) == 50 and len(detail.invites.items) == 10
