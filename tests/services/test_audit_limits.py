"""`record_refused()`: the one place refused attempts are limited, per account or anonymous address."""

import pytest
from django.contrib.auth.models import AnonymousUser

from groups_app.models import AuditEntry, RefusalTally
from groups_app.rules.book import ROLE_DENIED
from groups_app.services.audit import (
    SYSTEM,
    RequestOrigin,
    audited,
    flush_refusal_tallies,
    origin_var,
    record_refused,
)
from groups_app.services.errors import NotAllowed, ServiceError, TooManyRefusals
from groups_app.services.manage import group_rename
from tests.clock import frozen_clock
from tests.factories import viewer

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    return frozen_clock(monkeypatch)  # 10:00:05 UTC


def refuse(actor, client_ip=None):
    token = origin_var.set(RequestOrigin(client_ip=client_ip))
    try:
        return record_refused(reason="Not signed in.", actor=actor, action="members.add", summary="refused")
    finally:
        origin_var.reset(token)


def test_a_refusal_over_the_limit_in_the_pipeline_is_a_service_error_carrying_its_reason(clock, settings):
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 2
    vera = viewer(username="vera")
    for _ in range(2):
        with pytest.raises(NotAllowed):
            group_rename(actor=vera, group_id="groupTeam0000000000000000001", name="Renamed")

    with pytest.raises(TooManyRefusals) as over:
        group_rename(actor=vera, group_id="groupTeam0000000000000000001", name="Renamed")

    assert isinstance(over.value, ServiceError)  # every caller that handles refusals handles it
    assert over.value.reason == ROLE_DENIED and ROLE_DENIED in over.value.message
    assert over.value.retry_after == 55
    assert isinstance(over.value.__context__, NotAllowed)  # the original error is kept, chained
    assert AuditEntry.objects.count() == 2
    assert RefusalTally.objects.get().refused == 1


def test_anonymous_refusals_are_limited_per_address_an_ipv6_network_counting_as_one(clock, settings):
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 3
    for host in range(3):
        refuse(AnonymousUser(), client_ip=f"2001:db8:0:1::{host + 1}")

    with pytest.raises(TooManyRefusals):
        refuse(AnonymousUser(), client_ip="2001:db8:0:1::ff")
    refuse(AnonymousUser(), client_ip="198.51.100.7")  # another address has its own allowance

    assert AuditEntry.objects.filter(actor_username="anonymous").count() == 4
    assert RefusalTally.objects.get().actor_key == "address:2001:db8:0:1::/64"


def test_anonymous_refusals_without_an_address_share_one_allowance(clock, settings):
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 1
    refuse(AnonymousUser())

    with pytest.raises(TooManyRefusals):
        refuse(AnonymousUser())


def test_scheduled_jobs_are_not_limited(clock, settings):
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 1

    entries = [refuse(SYSTEM) for _ in range(3)]

    assert len(entries) == 3 and not RefusalTally.objects.exists()


def test_a_count_is_written_once_however_often_it_is_flushed(clock, settings):
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 1
    vera = viewer(username="vera")
    refuse(vera)
    for _ in range(4):
        with pytest.raises(TooManyRefusals):
            refuse(vera)
    clock.advance(minutes=1)

    written = flush_refusal_tallies() + flush_refusal_tallies()

    assert [entry.details["refused"] for entry in written] == [4]
    assert written[0].actor_user_id == vera.pk


def test_local_actions_refused_by_a_rule_count_and_are_not_tried_over_the_limit(clock, settings):
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 2
    hana = viewer(username="hana")
    tried = []

    def approve_own_request():
        with audited(actor=hana, action="request.approve", summary="hana approved her own request"):
            tried.append(True)
            raise NotAllowed("You cannot approve a request you filed.")

    for _ in range(2):
        with pytest.raises(NotAllowed):
            approve_own_request()
    with pytest.raises(TooManyRefusals) as over:
        approve_own_request()

    assert len(tried) == 2 and "not tried" in over.value.message
    assert AuditEntry.objects.filter(status="refused").count() == 2
    assert RefusalTally.objects.get().refused == 1
