import pytest

from groups_app.services.api_tokens import api_token_create
from groups_app.services.audit import SYSTEM
from tests.factories import administrator, help_desk, viewer


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.fixture
def make_token(db):
    """make_token(user, scope) → the secret of a new token of `user`'s."""

    def make(user, scope: str = "change", name: str = "") -> str:
        return api_token_create(actor=SYSTEM, user=user, name=name or f"{scope}-bot", scope=scope).secret

    return make


@pytest.fixture
def ada(db):
    return administrator(username="ada", email="ada@example.com")


@pytest.fixture
def hana(db):
    return help_desk(username="hana", email="hana@example.com")


@pytest.fixture
def vera(db):
    return viewer(username="vera", email="vera@example.com")


@pytest.fixture
def team(demo_workspace):
    """A non-privileged group with members, no HTML in its name."""
    return next(
        g
        for g in demo_workspace.values()
        if g.name != "All Employees" and "<" not in g.name and g.memberships.exists()
    )
