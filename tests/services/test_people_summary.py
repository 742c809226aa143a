"""People in constant time: the per-person summary the syncs and the write-through keep, the
search that reads it, and the count that stops at 1,000."""

import pytest
from django.db import connection
from django.db.models import Count, Max, Q

from groups_app.models import MirrorMember, MirrorPerson
from groups_app.services.membership import group_members_add, group_members_remove
from groups_app.services.mirror.sync import refresh_group, sync_changed, sync_workspace
from groups_app.services.people import PEOPLE_COUNT_LIMIT, people_search
from groups_app.services.segment_client import get_client
from sandbox.models import Invite, Membership, UserGroup, WorkspaceUser
from tests.factories import help_desk, viewer
from tests.services.test_mirror import GROUP, workspace  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def summaries() -> dict[str, tuple]:
    return {p.email: (p.name, p.group_count, p.invite_count) for p in MirrorPerson.objects.all()}


def from_memberships() -> dict[str, tuple]:
    """The summary computed the slow way, from every membership."""
    rows = (
        MirrorMember.objects.values("email")
        .annotate(
            name=Max("name"),
            groups=Count("pk"),
            invites=Count("pk", filter=Q(kind=MirrorMember.Kind.INVITE)),
        )
        .order_by()
    )
    return {r["email"]: (r["name"], r["groups"], r["invites"]) for r in rows}


@pytest.fixture
def two_groups(workspace):  # noqa: F811 - the fixture imported above
    other = UserGroup.objects.create(name="Analysts")
    Membership.objects.create(group=other, user=WorkspaceUser.objects.get(email="alice@example.com"))
    Invite.objects.create(group=other, email="newbie@example.com")
    return workspace


def test_the_first_sync_writes_every_persons_summary(two_groups):
    sync_workspace(trigger="baseline")

    assert summaries() == from_memberships()
    assert summaries()["alice@example.com"] == ("Alice Liddell", 2, 0)
    assert summaries()["newbie@example.com"] == ("", 2, 2)


def test_summaries_follow_outside_changes_read_by_quick_passes_and_refreshes(two_groups):
    sync_workspace(trigger="baseline")
    api = get_client()
    api.add_users_to_user_group(GROUP, ["carol@example.com"])
    api.remove_users_from_user_group(GROUP, ["alice@example.com"])
    WorkspaceUser.objects.filter(email="bob@example.com").update(name="Robert")

    sync_changed(trigger="test")
    refresh_group(GROUP, trigger="test")  # Bob's new name: the count kept, read by the refresh

    assert summaries() == from_memberships()
    assert summaries()["alice@example.com"] == ("Alice Liddell", 1, 0)
    assert summaries()["carol@example.com"] == ("Carol", 1, 0)
    assert summaries()["bob@example.com"][0] == "Robert"


def test_a_deleted_group_leaves_the_summaries_of_its_members(two_groups):
    sync_workspace(trigger="baseline")
    get_client().delete_user_group(GROUP)

    sync_changed(trigger="test")

    assert summaries() == from_memberships()
    assert "bob@example.com" not in summaries()  # in no group any more
    assert summaries()["alice@example.com"] == ("Alice Liddell", 1, 0)


def test_changes_made_here_are_written_through_to_the_summaries(two_groups):
    sync_workspace(trigger="baseline")
    hana = help_desk(username="hana")

    group_members_add(actor=hana, group_id=GROUP, emails=["stranger@example.org"])
    group_members_remove(actor=hana, group_id=GROUP, emails=["bob@example.com"])

    assert summaries() == from_memberships()
    assert summaries()["stranger@example.org"] == ("", 1, 1)
    assert "bob@example.com" not in summaries()


def test_people_search_reads_the_summaries(two_groups):
    sync_workspace(trigger="baseline")

    listing = people_search(query="LIDDELL")
    everyone = people_search(query="")

    assert [(r.email, r.name, r.group_count, r.is_user) for r in listing.rows] == [
        ("alice@example.com", "Alice Liddell", 2, True)
    ]
    assert listing.total_text == "1" and not listing.is_count_capped
    assert [r.email for r in everyone.rows] == ["alice@example.com", "bob@example.com", "newbie@example.com"]
    assert not everyone.rows[2].is_user


def test_people_search_ignores_nul_characters(two_groups):
    sync_workspace(trigger="baseline")

    assert [r.email for r in people_search(query="bo\x00b").rows] == ["bob@example.com"]


@pytest.fixture
def crowd(db):
    """More people than the exact count goes to, straight into the summary."""
    MirrorPerson.objects.bulk_create(
        MirrorPerson(
            email=f"person{n:04}@example.com", name=f"Person {n}", name_key=f"person {n}", group_count=1
        )
        for n in range(PEOPLE_COUNT_LIMIT + 30)
    )


def test_past_1000_matches_the_count_says_more_than_1000(crowd):
    first = people_search(query="example.com", page_size=25)
    last = people_search(query="example.com", page=42, page_size=25)

    assert first.is_count_capped and first.total_text == "More than 1,000"
    assert (first.page, first.page_count, len(first.rows)) == (1, 2, 25)
    assert first.rows[0].email == "person0000@example.com"
    assert (last.page, last.page_count, len(last.rows)) == (42, 42, 5)  # 1,030 people: 41 full pages
    assert last.rows[-1].email == "person1029@example.com"


def test_a_page_past_the_end_of_a_capped_count_shows_the_first(crowd):
    listing = people_search(query="", page=500)

    assert listing.page == 1 and listing.rows[0].email == "person0000@example.com"


def test_the_people_page_says_more_than_1000(client, crowd):
    client.force_login(viewer(username="vera"))

    page = client.post("/people/", {"q": "person"}, follow=True).content.decode()  # a search is POSTed

    assert "More than 1,000 people matching “person”" in page
    assert "1–25 of more than 1,000 · page 1" in page
    assert 'rel="next"' in page


@pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's")
def test_people_search_uses_the_trigram_indexes_on_postgresql(crowd):
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE groups_app_mirrorperson")
        cursor.execute("SET enable_seqscan = off")  # a thousand rows: the planner would just read them
        cursor.execute("SET enable_indexscan = off")
        query = MirrorPerson.objects.filter(
            Q(email__contains="erson12") | Q(name_key__contains="erson12")
        ).order_by()
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "mirrorperson_email_trgm" in plan and "mirrorperson_name_trgm" in plan
