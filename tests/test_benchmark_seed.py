"""benchmark_mirror's seeding: the workspace it measures has the shape it prints (the
memberships are written by plain INSERTs, not through the models)."""

import pytest
from django.db.models import Count

from groups_app.management.commands.benchmark_mirror import FIFTY, seed
from sandbox.models import Invite, Membership, UserGroup, WorkspaceUser

pytestmark = pytest.mark.django_db


def test_seed_makes_the_groups_and_memberships_asked_for():
    big, emails = seed(groups=30, memberships=1000, big_group=100)

    assert UserGroup.objects.count() == 30
    assert big.memberships.count() == 100
    per_group = (1000 - 100) // 29
    others = Membership.objects.exclude(group=big).exclude(user__email=FIFTY)
    assert set(others.values_list("group_id").annotate(n=Count("pk")).values_list("n", flat=True)) == {
        per_group
    }
    # The person in many groups is in every group but the big one (fewer than fifty here).
    assert Membership.objects.filter(user__email=FIFTY).count() == 29
    assert Membership.objects.filter(created_at__isnull=True).count() == 0
    assert Invite.objects.count() == 3 * 3  # groups 1, 11 and 21
    assert set(emails) <= set(WorkspaceUser.objects.values_list("email", flat=True))
    assert Membership.objects.order_by().first().created_at is not None  # read back as a datetime
