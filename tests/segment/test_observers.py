"""The client's call observers: every attempt of `_request()` is told, with its operation (ids
left out), status and latency, and every wait after a 429; an observer never fails a call."""

import pytest
import requests
import responses

from groups_app.segment import Unavailable
from groups_app.segment.observers import add_call_observer, operation_of, remove_call_observer
from tests.conftest import API
from tests.payloads import envelope, error_envelope, user_group_payload

GROUP_ID = "grp123"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.waits: list[tuple[str, float]] = []

    def call(self, operation: str, status: str, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append((operation, status))

    def rate_limit_wait(self, operation: str, seconds: float) -> None:
        self.waits.append((operation, seconds))


@pytest.fixture
def recorder():
    recording = Recorder()
    add_call_observer(recording)
    yield recording
    remove_call_observer(recording)


def test_operations_name_the_path_without_ids():
    assert operation_of("GET", "/groups/abc123/users") == "GET /groups/{id}/users"
    assert operation_of("DELETE", "/group/abc123/users") == "DELETE /group/{id}/users"
    assert operation_of("GET", "/groups") == "GET /groups"
    assert operation_of("PUT", "/groups/x9/permissions") == "PUT /groups/{id}/permissions"


def test_each_attempt_and_each_rate_limit_wait_is_observed(segment, sleeps, recorder):
    with responses.RequestsMock(registry=responses.registries.OrderedRegistry) as mock:
        mock.post(f"{API}/groups", status=429, json=error_envelope("Too many", msBeforeNext=1500))
        mock.post(f"{API}/groups", json=envelope(userGroup=user_group_payload()))

        segment.create_user_group("Analysts")

    assert recorder.calls == [("POST /groups", "429"), ("POST /groups", "200")]
    assert recorder.waits == [("POST /groups", 1.5)]


@responses.activate
def test_a_connection_failure_is_observed(segment, recorder):
    segment.max_retries = 0
    responses.get(f"{API}/groups/{GROUP_ID}", body=requests.ConnectionError("refused"))

    with pytest.raises(Unavailable):
        segment.get_user_group(GROUP_ID)

    assert recorder.calls == [("GET /groups/{id}", "connection_error")]


@responses.activate
def test_an_observer_that_fails_never_fails_the_call(segment, recorder):
    class Broken:
        def call(self, operation, status, seconds):
            raise RuntimeError("metrics down")

        def rate_limit_wait(self, operation, seconds):
            raise RuntimeError("metrics down")

    broken = Broken()
    add_call_observer(broken)
    responses.get(f"{API}/groups/{GROUP_ID}", json=envelope(userGroup=user_group_payload(id=GROUP_ID)))
    try:
        group = segment.get_user_group(GROUP_ID)
    finally:
        remove_call_observer(broken)

    assert group.id == GROUP_ID
    assert recorder.calls == [("GET /groups/{id}", "200")]
