import pytest
from django.core.cache import cache

from groups_app.segment import SegmentClient

API = "https://api.segmentapis.com"
TOKEN = "sgp_test_token_7f3a9c"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache (cached reads, sandbox rate-limit budget)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def sleeps() -> list[float]:
    """Records the waits the client asked for instead of sleeping."""
    return []


@pytest.fixture
def segment(sleeps) -> SegmentClient:
    """A client of the real API's address, for tests that mock HTTP with `responses`."""
    return SegmentClient(API, TOKEN, max_retries=3, sleep=sleeps.append)


@pytest.fixture
def viewer_client(client, db):
    from tests.factories import viewer

    client.force_login(viewer(username="vera"))
    return client


@pytest.fixture
def help_desk_client(client, db):
    from tests.factories import help_desk

    client.force_login(help_desk(username="hana"))
    return client


@pytest.fixture
def admin_user_client(client, db):
    """Signed in as a member of the Administrator role (not a superuser)."""
    from tests.factories import administrator

    client.force_login(administrator(username="ada"))
    return client
