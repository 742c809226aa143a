"""The Segment client against mocked HTTP: request shapes, parsing, errors and retry rules."""

import logging
from datetime import UTC, datetime

import pytest
import requests
import responses
from responses import matchers
from urllib3.exceptions import NewConnectionError

from groups_app.segment import (
    AuthenticationFailed,
    DeadlineExceeded,
    IamRole,
    NamedResource,
    NotFound,
    OutcomeUnknown,
    Permission,
    RateLimited,
    Resource,
    SegmentClient,
    SegmentError,
    Unavailable,
    UserGroup,
    ValidationFailed,
    WorkspaceUser,
    deadline,
    time_left,
)
from groups_app.segment.client import ACCEPT, MAX_URL_LENGTH
from tests.conftest import API, TOKEN
from tests.payloads import (
    envelope,
    error_envelope,
    pagination_payload,
    permission_payload,
    role_payload,
    user_group_payload,
    user_payload,
)

GROUP_ID = "2Dve5ppWLkNXmkmCcNBqx5Y3lPE"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": ACCEPT}


# -- request shapes and parsing ---------------------------------------------------


@responses.activate
def test_list_user_groups_sends_pagination_and_parses_page(segment):
    responses.get(
        f"{API}/groups",
        match=[
            matchers.query_param_matcher({"pagination.count": "25", "pagination.cursor": "abc"}),
            matchers.header_matcher(HEADERS),
        ],
        json=envelope(
            userGroups=[user_group_payload()],
            pagination=pagination_payload(current="abc", next="def", previous="MA==", total=80),
        ),
    )

    page = segment.list_user_groups(count=25, cursor="abc")

    assert page.items == (
        UserGroup(
            id=GROUP_ID,
            name="Data Engineering",
            member_count=3,
            permissions=(
                Permission(
                    role_id="roleSourceAdmin01",
                    role_name="Source Admin",
                    resources=(Resource(id="src9Xy7Wq2Lm", type="SOURCE"),),
                ),
            ),
        ),
    )
    assert (page.current, page.next, page.previous, page.total_entries) == ("abc", "def", "MA==", 80)
    assert page.has_next and page.has_previous


@responses.activate
def test_first_page_omits_cursor_and_sends_user_agent(segment):
    responses.get(
        f"{API}/groups",
        match=[matchers.query_param_matcher({"pagination.count": "50"})],
        json=envelope(userGroups=[], pagination=pagination_payload()),
    )

    page = segment.list_user_groups()

    assert page.items == () and page.next is None and page.total_entries is None
    assert responses.calls[0].request.headers["User-Agent"].startswith("GroupAdmin/")


@responses.activate
def test_iter_user_groups_follows_cursors_with_count_200(segment):
    responses.get(
        f"{API}/groups",
        match=[matchers.query_param_matcher({"pagination.count": "200"})],
        json=envelope(
            userGroups=[user_group_payload(id="g1"), user_group_payload(id="g2")],
            pagination=pagination_payload(next="c2"),
        ),
    )
    responses.get(
        f"{API}/groups",
        match=[matchers.query_param_matcher({"pagination.count": "200", "pagination.cursor": "c2"})],
        json=envelope(userGroups=[user_group_payload(id="g3")], pagination=pagination_payload(current="c2")),
    )

    assert [group.id for group in segment.iter_user_groups()] == ["g1", "g2", "g3"]


@responses.activate
def test_iteration_stops_with_error_when_a_cursor_repeats(segment):
    responses.get(
        f"{API}/groups",
        json=envelope(userGroups=[user_group_payload()], pagination=pagination_payload(next="same")),
    )

    with pytest.raises(SegmentError, match="cursor"):
        list(segment.iter_user_groups())


@responses.activate
def test_get_user_group(segment):
    responses.get(f"{API}/groups/{GROUP_ID}", json=envelope(userGroup=user_group_payload(permissions=[])))

    group = segment.get_user_group(GROUP_ID)

    assert group == UserGroup(id=GROUP_ID, name="Data Engineering", member_count=3)


@responses.activate
def test_create_user_group_posts_name(segment):
    responses.post(
        f"{API}/groups",
        match=[
            matchers.json_params_matcher({"name": "Analysts"}),
            matchers.header_matcher({"Content-Type": "application/json"}),
        ],
        json=envelope(userGroup=user_group_payload(name="Analysts", memberCount=0, permissions=[])),
    )

    assert segment.create_user_group("Analysts").name == "Analysts"


@responses.activate
def test_update_user_group_patches_name(segment):
    responses.patch(
        f"{API}/groups/{GROUP_ID}",
        match=[matchers.json_params_matcher({"name": "Data Platform"})],
        json=envelope(userGroup=user_group_payload(name="Data Platform")),
    )

    assert segment.update_user_group(GROUP_ID, "Data Platform").name == "Data Platform"


@responses.activate
def test_delete_user_group(segment):
    responses.delete(f"{API}/groups/{GROUP_ID}", json=envelope(status="SUCCESS"))

    assert segment.delete_user_group(GROUP_ID) is None
    assert len(responses.calls) == 1


@responses.activate
def test_list_users_from_user_group(segment):
    responses.get(
        f"{API}/groups/{GROUP_ID}/users",
        match=[matchers.query_param_matcher({"pagination.count": "10"})],
        json=envelope(
            users=[user_payload(1), user_payload(2)], pagination=pagination_payload(next="n", total=12)
        ),
    )

    page = segment.list_users_from_user_group(GROUP_ID, count=10)

    assert page.items[0] == WorkspaceUser(id="user00001abc", name="User 1", email="user1@example.com")
    assert page.total_entries == 12


@responses.activate
def test_iter_users_and_invites_walk_every_page(segment):
    for kind, key, first, second in (
        ("users", "users", [user_payload(1)], [user_payload(2)]),
        ("invites", "emails", ["a@example.com"], ["b@example.com"]),
    ):
        responses.get(
            f"{API}/groups/{GROUP_ID}/{kind}",
            match=[matchers.query_param_matcher({"pagination.count": "200"})],
            json=envelope(**{key: first, "pagination": pagination_payload(next="p2")}),
        )
        responses.get(
            f"{API}/groups/{GROUP_ID}/{kind}",
            match=[matchers.query_param_matcher({"pagination.count": "200", "pagination.cursor": "p2"})],
            json=envelope(**{key: second, "pagination": pagination_payload(current="p2")}),
        )

    assert [user.email for user in segment.iter_users_from_user_group(GROUP_ID)] == [
        "user1@example.com",
        "user2@example.com",
    ]
    assert list(segment.iter_invites_from_user_group(GROUP_ID)) == ["a@example.com", "b@example.com"]


@responses.activate
def test_list_invites_from_user_group(segment):
    responses.get(
        f"{API}/groups/{GROUP_ID}/invites",
        json=envelope(emails=["new@example.com"], pagination=pagination_payload(total=1)),
    )

    assert segment.list_invites_from_user_group(GROUP_ID).items == ("new@example.com",)


@responses.activate
def test_add_users_normalizes_emails_before_sending(segment):
    responses.post(
        f"{API}/groups/{GROUP_ID}/users",
        match=[matchers.json_params_matcher({"emails": ["ann@example.com", "bob@example.com"]})],
        json=envelope(userGroup=user_group_payload(memberCount=5)),
    )

    group = segment.add_users_to_user_group(
        GROUP_ID, ["  Ann@Example.com", "bob@example.com", "ANN@example.com "]
    )

    assert group.member_count == 5


@responses.activate
def test_add_users_sends_batches_of_100(segment):
    emails = [f"person{i}@example.com" for i in range(250)]
    for batch in (emails[:100], emails[100:200], emails[200:]):
        responses.post(
            f"{API}/groups/{GROUP_ID}/users",
            match=[matchers.json_params_matcher({"emails": batch})],
            json=envelope(userGroup=user_group_payload(memberCount=len(batch))),
        )

    group = segment.add_users_to_user_group(GROUP_ID, emails)

    assert len(responses.calls) == 3
    assert group.member_count == 50  # the last batch's answer is the group's latest state


@responses.activate
def test_add_users_failure_in_second_batch_reports_what_was_applied(segment):
    emails = [f"person{i}@example.com" for i in range(150)]
    responses.post(f"{API}/groups/{GROUP_ID}/users", json=envelope(userGroup=user_group_payload()))
    responses.post(
        f"{API}/groups/{GROUP_ID}/users",
        status=422,
        json=error_envelope("Invalid email", field="emails.3"),
    )

    with pytest.raises(ValidationFailed) as caught:
        segment.add_users_to_user_group(GROUP_ID, emails)

    assert caught.value.completed_emails == tuple(emails[:100])
    assert caught.value.remaining_emails == tuple(emails[100:])
    assert caught.value.field_errors == {"emails.3": "Invalid email"}


@responses.activate
def test_remove_users_uses_singular_path_and_indexed_emails(segment):
    responses.delete(
        f"{API}/group/{GROUP_ID}/users",
        match=[matchers.query_param_matcher({"emails.0": "a@example.com", "emails.1": "b+tag@example.com"})],
        json=envelope(status="SUCCESS"),
    )

    assert segment.remove_users_from_user_group(GROUP_ID, ["A@example.com", "b+tag@example.com"]) is None
    assert "emails.1=b%2Btag%40example.com" in responses.calls[0].request.url


@responses.activate
def test_remove_users_splits_batches_to_keep_urls_under_6_kb(segment):
    emails = [f"a.rather.long.address.number{i}@example-company.com" for i in range(400)]
    responses.delete(f"{API}/group/{GROUP_ID}/users", json=envelope(status="SUCCESS"))

    segment.remove_users_from_user_group(GROUP_ID, emails)

    sent = []
    for call in responses.calls:
        assert len(call.request.url) <= MAX_URL_LENGTH
        query = requests.utils.urlparse(call.request.url).query
        sent.extend(requests.utils.unquote(part.split("=", 1)[1]) for part in query.split("&"))
        assert query.startswith("emails.0=")
    assert len(responses.calls) > 1
    assert sent == emails


@responses.activate
def test_replace_users_puts_to_singular_path(segment):
    responses.put(
        f"{API}/group/{GROUP_ID}/users",
        match=[matchers.json_params_matcher({"emails": ["x@example.com"]})],
        json=envelope(userGroup=user_group_payload(memberCount=1)),
    )

    assert segment.replace_users_in_user_group(GROUP_ID, ["X@example.com"]).member_count == 1


@pytest.mark.parametrize(
    ("method", "call"),
    [("POST", "add_permissions_to_user_group"), ("PUT", "replace_permissions_for_user_group")],
)
@responses.activate
def test_permissions_are_sent_in_wire_format(segment, method, call):
    body = {
        "permissions": [
            {"roleId": "roleSourceAdmin01", "resources": [{"id": "src9Xy7Wq2Lm", "type": "SOURCE"}]},
            {"roleId": "roleWorkspaceOwner1", "resources": [{"id": "ws1", "type": "WORKSPACE"}]},
        ]
    }
    responses.add(
        method,
        f"{API}/groups/{GROUP_ID}/permissions",
        match=[matchers.json_params_matcher(body)],
        json=envelope(permissions=[permission_payload()]),
    )
    permissions = [
        Permission("roleSourceAdmin01", resources=(Resource("src9Xy7Wq2Lm", "SOURCE"),)),
        Permission(
            "roleWorkspaceOwner1", role_name="ignored on the wire", resources=(Resource("ws1", "WORKSPACE"),)
        ),
    ]

    result = getattr(segment, call)(GROUP_ID, permissions)

    assert result == [Permission("roleSourceAdmin01", "Source Admin", (Resource("src9Xy7Wq2Lm", "SOURCE"),))]


@responses.activate
def test_list_roles(segment):
    responses.get(
        f"{API}/roles",
        match=[matchers.query_param_matcher({"pagination.count": "200"})],
        json=envelope(roles=[role_payload()], pagination=pagination_payload()),
    )

    assert segment.list_roles().items == (IamRole("roleWorkspaceOwner1", "Workspace Owner", "Full access"),)


# -- identifiers, malformed answers ----------------------------------------------


@pytest.mark.parametrize("bad_id", ["", "../roles", "abc/def", "abc?x=1", "id with space", "é1"])
@responses.activate
def test_bad_ids_raise_value_error_without_a_request(segment, bad_id):
    with pytest.raises(ValueError, match="letters and digits"):
        segment.get_user_group(bad_id)
    with pytest.raises(ValueError, match="letters and digits"):
        segment.remove_users_from_user_group(bad_id, ["a@example.com"])
    assert len(responses.calls) == 0


@responses.activate
def test_empty_email_list_raises_value_error_without_a_request(segment):
    with pytest.raises(ValueError, match="at least one email"):
        segment.add_users_to_user_group(GROUP_ID, ["  ", ""])
    assert len(responses.calls) == 0


@pytest.mark.parametrize(
    "body",
    [
        "not json at all",
        '{"userGroup": {}}',
        '{"data": "nope"}',
        '{"data": {"userGroup": {"name": "no id"}}}',
        '{"data": {"userGroup": {"id": "x", "name": "n", "memberCount": "many"}}}',
        "[1, 2]",
    ],
)
@responses.activate
def test_malformed_success_responses_raise_segment_error(segment, body):
    responses.get(f"{API}/groups/{GROUP_ID}", body=body, content_type="application/json")

    with pytest.raises(SegmentError, match="Unexpected response") as caught:
        segment.get_user_group(GROUP_ID)
    assert type(caught.value) is SegmentError


@responses.activate
def test_malformed_pagination_raises_segment_error(segment):
    responses.get(f"{API}/groups", json=envelope(userGroups=[], pagination={"totalEntries": "lots"}))

    with pytest.raises(SegmentError, match="totalEntries"):
        segment.list_user_groups()


# -- error statuses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, ValidationFailed),
        (401, AuthenticationFailed),
        (403, AuthenticationFailed),
        (404, NotFound),
        (409, SegmentError),
        (422, ValidationFailed),
        (500, Unavailable),
        (501, Unavailable),
    ],
)
@responses.activate
def test_error_statuses_map_to_typed_errors(segment, status, error_class):
    responses.patch(
        f"{API}/groups/{GROUP_ID}",
        status=status,
        json=error_envelope("Something about the name", field="name"),
    )

    with pytest.raises(error_class) as caught:
        segment.update_user_group(GROUP_ID, "x")

    assert caught.value.status == status
    assert caught.value.errors[0]["message"] == "Something about the name"
    assert len(responses.calls) == 1


@responses.activate
def test_validation_failed_exposes_field_errors(segment):
    responses.post(
        f"{API}/groups",
        status=422,
        json={
            "errors": [
                {"type": "validation", "message": "Name is too long", "field": "name"},
                {"type": "validation", "message": "Second message for name", "field": "name"},
                {"type": "validation", "message": "No field here"},
            ]
        },
    )

    with pytest.raises(ValidationFailed) as caught:
        segment.create_user_group("x" * 200)

    assert caught.value.field_errors == {"name": "Name is too long"}
    assert "Name is too long" in str(caught.value)


@responses.activate
def test_error_without_json_body_still_maps_status(segment):
    responses.get(f"{API}/groups/{GROUP_ID}", status=404, body="<html>gone</html>")

    with pytest.raises(NotFound):
        segment.get_user_group(GROUP_ID)


# -- retries ---------------------------------------------------------------------------


@responses.activate
def test_429_waits_ms_before_next_then_succeeds(segment, sleeps):
    registry = responses.registries.OrderedRegistry
    with responses.RequestsMock(registry=registry) as mock:
        mock.post(f"{API}/groups", status=429, json=error_envelope("Too many", msBeforeNext=1500))
        mock.post(f"{API}/groups", json=envelope(userGroup=user_group_payload()))

        group = segment.create_user_group("Analysts")

    assert group.id == GROUP_ID
    assert sleeps == [1.5]


@responses.activate
def test_429_falls_back_to_retry_after_then_rate_limit_reset(sleeps):
    fixed_now = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
    client = SegmentClient(API, TOKEN, sleep=sleeps.append, now=lambda: fixed_now)
    with responses.RequestsMock(registry=responses.registries.OrderedRegistry) as mock:
        mock.get(f"{API}/roles", status=429, headers={"Retry-After": "2"}, json={"errors": []})
        mock.get(
            f"{API}/roles",
            status=429,
            headers={"X-RateLimit-Reset": "Mon, 05 Jan 2026 12:00:04 GMT"},
            body="",
        )
        mock.get(f"{API}/roles", json=envelope(roles=[], pagination=pagination_payload()))

        client.list_roles()

    assert sleeps == [2.0, 4.0]


@responses.activate
def test_429_gives_up_after_max_retries_with_retry_after(segment, sleeps):
    responses.delete(
        f"{API}/groups/{GROUP_ID}", status=429, json=error_envelope("Too many", msBeforeNext=700)
    )

    with pytest.raises(RateLimited) as caught:
        segment.delete_user_group(GROUP_ID)

    assert len(responses.calls) == 4  # the first try and three retries
    assert sleeps == [0.7, 0.7, 0.7]
    assert caught.value.retry_after == pytest.approx(0.7)
    assert caught.value.status == 429


@responses.activate
def test_429_never_waits_beyond_the_total_budget(sleeps):
    client = SegmentClient(API, TOKEN, max_retries=5, max_retry_wait=30, sleep=sleeps.append)
    responses.get(f"{API}/roles", status=429, json=error_envelope("Too many", msBeforeNext=20_000))

    with pytest.raises(RateLimited, match=r"try again at \d\d:\d\d:\d\d UTC") as caught:
        client.list_roles()

    assert caught.value.retry_after == 20.0 and caught.value.is_read
    assert sleeps == [20.0]
    assert len(responses.calls) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
@responses.activate
def test_reads_are_retried_on_server_errors_with_backoff(segment, sleeps, status):
    with responses.RequestsMock(registry=responses.registries.OrderedRegistry) as mock:
        mock.get(f"{API}/groups/{GROUP_ID}", status=status)
        mock.get(f"{API}/groups/{GROUP_ID}", status=status)
        mock.get(f"{API}/groups/{GROUP_ID}", json=envelope(userGroup=user_group_payload()))

        assert segment.get_user_group(GROUP_ID).id == GROUP_ID

    assert len(sleeps) == 2
    assert 0 < sleeps[0] <= 0.25 and 0 < sleeps[1] <= 0.5


@responses.activate
def test_reads_give_up_after_max_retries_on_5xx(segment, sleeps):
    responses.get(f"{API}/groups/{GROUP_ID}", status=503)

    with pytest.raises(Unavailable, match="not responding"):
        segment.get_user_group(GROUP_ID)

    assert len(responses.calls) == 4


@responses.activate
def test_each_listing_a_sync_reads_is_retried_after_one_500(sleeps):
    """A full sync pages through roles, groups, users and invites: one 500 on any of them is retried."""
    client = SegmentClient(API, TOKEN, max_retries=3, sleep=sleeps.append)
    listings = [
        (f"{API}/roles", lambda: client.list_roles(count=1000), {"roles": [role_payload()]}),
        (f"{API}/groups", lambda: client.list_user_groups(count=1000), {"userGroups": []}),
        (
            f"{API}/groups/{GROUP_ID}/users",
            lambda: client.list_users_from_user_group(GROUP_ID, count=1000),
            {"users": []},
        ),
        (
            f"{API}/groups/{GROUP_ID}/invites",
            lambda: client.list_invites_from_user_group(GROUP_ID, count=1000),
            {"emails": []},
        ),
    ]
    with responses.RequestsMock(registry=responses.registries.OrderedRegistry) as mock:
        for url, _, data in listings:
            mock.get(url, status=500, json=error_envelope("Internal server error"))
            mock.get(url, status=500, json=error_envelope("Internal server error"))
            mock.get(url, json=envelope(**data, pagination=pagination_payload()))

        pages = [read() for _, read, _ in listings]

    assert len(pages) == 4 and len(sleeps) == 8


@pytest.mark.parametrize("status", [501, 505])
@responses.activate
def test_reads_are_not_retried_on_answers_that_would_repeat(segment, sleeps, status):
    responses.get(f"{API}/groups/{GROUP_ID}", status=status)

    with pytest.raises(Unavailable):
        segment.get_user_group(GROUP_ID)

    assert len(responses.calls) == 1 and sleeps == []


@responses.activate
def test_a_read_that_keeps_failing_with_500_gives_up_after_max_retries(segment, sleeps):
    responses.get(f"{API}/roles", status=500, json=error_envelope("Internal server error"))

    with pytest.raises(Unavailable, match="not responding"):
        segment.list_roles()

    assert len(responses.calls) == 1 + 3 and len(sleeps) == 3


@responses.activate
def test_reads_are_retried_after_a_connection_error(segment, sleeps):
    with responses.RequestsMock(registry=responses.registries.OrderedRegistry) as mock:
        mock.get(f"{API}/groups/{GROUP_ID}", body=requests.ConnectionError("refused"))
        mock.get(f"{API}/groups/{GROUP_ID}", json=envelope(userGroup=user_group_payload()))

        assert segment.get_user_group(GROUP_ID).id == GROUP_ID


@pytest.mark.parametrize(
    "failure",
    [requests.ReadTimeout("slow"), requests.ConnectionError("reset by peer"), 500, 502, 503, 504],
)
@pytest.mark.parametrize(
    ("method", "path", "call"),
    [
        (
            "POST",
            f"/groups/{GROUP_ID}/users",
            lambda c: c.add_users_to_user_group(GROUP_ID, ["a@example.com"]),
        ),
        (
            "DELETE",
            f"/group/{GROUP_ID}/users",
            lambda c: c.remove_users_from_user_group(GROUP_ID, ["a@example.com"]),
        ),
        (
            "PUT",
            f"/group/{GROUP_ID}/users",
            lambda c: c.replace_users_in_user_group(GROUP_ID, ["a@example.com"]),
        ),
        ("PATCH", f"/groups/{GROUP_ID}", lambda c: c.update_user_group(GROUP_ID, "n")),
        ("DELETE", f"/groups/{GROUP_ID}", lambda c: c.delete_user_group(GROUP_ID)),
        ("POST", "/groups", lambda c: c.create_user_group("n")),
        (
            "PUT",
            f"/groups/{GROUP_ID}/permissions",
            lambda c: c.replace_permissions_for_user_group(GROUP_ID, []),
        ),
    ],
)
@responses.activate
def test_failed_mutation_is_sent_once_and_raises_unavailable(segment, sleeps, failure, method, path, call):
    if isinstance(failure, int):
        responses.add(method, f"{API}{path}", status=failure)
    else:
        responses.add(method, f"{API}{path}", body=failure)

    with pytest.raises(OutcomeUnknown, match="may or may not have been applied"):
        call(segment)

    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_a_mutation_whose_connection_never_opened_is_known_not_sent(segment):
    refused = requests.ConnectionError(NewConnectionError(None, "Connection refused"))
    responses.post(f"{API}/groups", body=refused)

    with pytest.raises(Unavailable) as caught:
        segment.create_user_group("n")

    assert not isinstance(caught.value, OutcomeUnknown)
    assert "may or may not" not in caught.value.message


@responses.activate
def test_a_mutation_whose_connect_timed_out_is_known_not_sent(segment):
    responses.post(f"{API}/groups", body=requests.ConnectTimeout("connect timed out"))

    with pytest.raises(Unavailable) as caught:
        segment.create_user_group("n")

    assert not isinstance(caught.value, OutcomeUnknown)


# -- the deadline ---------------------------------------------------------------------------


@responses.activate
def test_timeouts_shrink_to_what_is_left_of_the_deadline():
    seen = []

    class RecordingSession(requests.Session):
        def request(self, *args, **kwargs):
            seen.append(kwargs.get("timeout"))
            return super().request(*args, **kwargs)

    client = SegmentClient(API, TOKEN, timeout=(3.05, 15), session=RecordingSession())
    responses.get(f"{API}/roles", json=envelope(roles=[], pagination=pagination_payload()))

    with deadline(2.0):
        client.list_roles()

    ((connect, read),) = seen
    assert 1.5 < connect <= 2.0 and 1.5 < read <= 2.0


@responses.activate
def test_a_429_whose_wait_would_pass_the_deadline_answers_at_once(sleeps):
    now = datetime(2026, 11, 28, 14, 2, 1, tzinfo=UTC)
    client = SegmentClient(API, TOKEN, max_retries=3, sleep=sleeps.append, now=lambda: now)
    responses.post(f"{API}/groups", status=429, json=error_envelope("Too many", msBeforeNext=30_500))

    with deadline(10), pytest.raises(RateLimited) as caught:
        client.create_user_group("n")

    assert sleeps == [] and len(responses.calls) == 1
    assert str(caught.value).startswith("Segment is rate-limiting changes; try again at 14:02:31 UTC.")
    assert caught.value.retry_at == datetime(2026, 11, 28, 14, 2, 31, 500000, tzinfo=UTC)
    assert not caught.value.is_read


@responses.activate
def test_a_429_that_fits_the_deadline_is_waited_out(sleeps):
    client = SegmentClient(API, TOKEN, max_retries=3, sleep=sleeps.append)
    with responses.RequestsMock(registry=responses.registries.OrderedRegistry) as mock:
        mock.post(f"{API}/groups", status=429, json=error_envelope("Too many", msBeforeNext=1_500))
        mock.post(f"{API}/groups", json=envelope(userGroup=user_group_payload()))

        with deadline(10):
            client.create_user_group("n")

    assert sleeps == [1.5]


@responses.activate
def test_read_retries_stop_when_the_deadline_is_spent(sleeps):
    client = SegmentClient(API, TOKEN, max_retries=5, sleep=sleeps.append)
    responses.get(f"{API}/roles", status=503)

    with deadline(0.2), pytest.raises(Unavailable):
        client.list_roles()

    assert sum(sleeps) < 0.2
    assert len(responses.calls) <= 2


@responses.activate
def test_nothing_is_sent_once_the_deadline_is_spent():
    client = SegmentClient(API, TOKEN)
    responses.get(f"{API}/roles", json=envelope(roles=[], pagination=pagination_payload()))

    with deadline(0.01), pytest.raises(DeadlineExceeded):
        client.list_roles()

    assert len(responses.calls) == 0


def test_an_inner_deadline_never_extends_an_outer_one():
    with deadline(1.0):
        with deadline(60.0):
            assert time_left() <= 1.0
        assert time_left() <= 1.0
    assert time_left() is None


# -- lossless permissions -------------------------------------------------------------------


@responses.activate
def test_labels_and_unknown_fields_survive_a_read_then_a_write(segment):
    resource = {
        "id": "ws1",
        "type": "WORKSPACE",
        "labels": [{"key": "environment", "value": "prod", "description": "Production only"}],
        "futureField": {"kept": True},
    }
    permission = {
        "roleId": "roleOwner1",
        "roleName": "Workspace Owner",
        "resources": [resource],
        "scope": "x",
    }
    responses.get(
        f"{API}/groups/{GROUP_ID}",
        json=envelope(userGroup=user_group_payload(permissions=[permission])),
    )
    responses.put(
        f"{API}/groups/{GROUP_ID}/permissions",
        json=envelope(permissions=[permission]),
        match=[
            matchers.json_params_matcher(
                {"permissions": [{"roleId": "roleOwner1", "resources": [resource], "scope": "x"}]}
            )
        ],
    )

    group = segment.get_user_group(GROUP_ID)
    written = segment.replace_permissions_for_user_group(GROUP_ID, group.permissions)

    assert written == list(group.permissions)
    assert group.permissions[0].resources[0].labels[0].value == "prod"


@responses.activate
def test_every_request_has_a_timeout():
    seen = []

    class RecordingSession(requests.Session):
        def request(self, *args, **kwargs):
            seen.append(kwargs.get("timeout"))
            return super().request(*args, **kwargs)

    client = SegmentClient(API, TOKEN, timeout=(1.5, 9), session=RecordingSession())
    responses.get(f"{API}/roles", json=envelope(roles=[], pagination=pagination_payload()))
    responses.post(f"{API}/groups", json=envelope(userGroup=user_group_payload()))

    client.list_roles()
    client.create_user_group("n")

    assert seen == [(1.5, 9), (1.5, 9)]


# -- secrets and logging ---------------------------------------------------------------


@responses.activate
def test_token_never_appears_in_repr_errors_or_logs(segment, caplog):
    caplog.set_level(logging.DEBUG, logger="groups_app.segment")
    responses.get(f"{API}/groups/{GROUP_ID}", status=401, json=error_envelope(f"bad token {TOKEN[:3]}"))
    responses.delete(f"{API}/group/{GROUP_ID}/users", body=requests.ConnectionError("boom"))

    with pytest.raises(AuthenticationFailed) as auth_error:
        segment.get_user_group(GROUP_ID)
    with pytest.raises(Unavailable) as unavailable:
        segment.remove_users_from_user_group(GROUP_ID, ["secret.person@example.com"])

    texts = [
        repr(segment),
        repr(segment.session.auth),
        repr(segment._auth),
        str(auth_error.value),
        repr(auth_error.value),
        str(unavailable.value),
        caplog.text,
    ]
    for text in texts:
        assert TOKEN not in text
    assert "secret.person@example.com" not in caplog.text
    assert "check SEGMENT_API_TOKEN" in str(auth_error.value)


@responses.activate
def test_each_request_is_logged_with_method_path_status_and_attempt(segment, caplog):
    caplog.set_level(logging.INFO, logger="groups_app.segment")
    responses.delete(f"{API}/group/{GROUP_ID}/users", json=envelope(status="SUCCESS"))

    segment.remove_users_from_user_group(GROUP_ID, ["someone@example.com"])

    (record,) = [r for r in caplog.records if r.name == "groups_app.segment"]
    assert record.getMessage().startswith(f"DELETE /group/{GROUP_ID}/users 200 in ")
    assert record.getMessage().endswith("(attempt 1)")


# -- resources by name ------------------------------------------------------------------------


@responses.activate
def test_resources_are_read_by_type_through_their_own_listings(segment):
    responses.get(f"{API}/", json=envelope(workspace={"id": "ws1", "name": "Acme", "slug": "acme"}))
    responses.get(
        f"{API}/sources",
        json=envelope(
            sources=[{"id": "src1", "name": "iOS App", "slug": "ios"}], pagination=pagination_payload()
        ),
        match=[matchers.query_param_matcher({"pagination.count": 200})],
    )
    responses.get(
        f"{API}/warehouses",
        json=envelope(
            warehouses=[
                {"id": "wh1", "metadata": {"name": "Snowflake"}, "settings": {"name": "Snowflake Prod"}}
            ],
            pagination=pagination_payload(),
        ),
    )
    for kind in ("SOURCE", "DESTINATION", "INSERT_DESTINATION", "INSERT_SOURCE"):
        responses.get(
            f"{API}/functions",
            json=envelope(
                functions=[{"id": f"fn{kind}", "displayName": f"Fn {kind}"}] if kind == "SOURCE" else [],
                pagination=pagination_payload(),
            ),
            match=[matchers.query_param_matcher({"pagination.count": 200, "resourceType": kind})],
        )

    assert list(segment.iter_resources("WORKSPACE")) == [NamedResource("ws1", "WORKSPACE", "Acme")]
    assert list(segment.iter_resources("SOURCE")) == [NamedResource("src1", "SOURCE", "iOS App")]
    assert list(segment.iter_resources("WAREHOUSE")) == [NamedResource("wh1", "WAREHOUSE", "Snowflake Prod")]
    assert list(segment.iter_resources("FUNCTION")) == [NamedResource("fnSOURCE", "FUNCTION", "Fn SOURCE")]
