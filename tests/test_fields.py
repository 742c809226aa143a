"""SealedTextField: secrets stored encrypted, readable across a SECRET_KEY rotation, and read as
nothing once no key opens them."""

import pytest
from django.db import connection

from groups_app.models import ExternalIdentity, ExternalSession
from tests.factories import viewer

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(db):
    identity = ExternalIdentity.objects.create(
        issuer="https://idp.example", subject="s1", user=viewer(username="vera"), linked_by="test"
    )
    return ExternalSession.objects.create(
        identity=identity, access_token="access-1", refresh_token="refresh-1", checked_at="2026-12-03T10:00Z"
    )


def raw_refresh_token(pk):
    with connection.cursor() as cursor:
        cursor.execute("SELECT refresh_token FROM groups_app_externalsession WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_a_sealed_value_is_not_in_the_database_as_written_and_reads_back(stored):
    assert "refresh-1" not in raw_refresh_token(stored.pk)
    assert ExternalSession.objects.get(pk=stored.pk).refresh_token == "refresh-1"


def test_an_update_seals_too(stored):
    ExternalSession.objects.filter(pk=stored.pk).update(refresh_token="refresh-2")

    assert "refresh-2" not in raw_refresh_token(stored.pk)
    assert ExternalSession.objects.get(pk=stored.pk).refresh_token == "refresh-2"


def test_values_stay_readable_while_the_old_key_is_a_fallback(stored, settings):
    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-key-" + "x" * 40, [old]

    assert ExternalSession.objects.get(pk=stored.pk).refresh_token == "refresh-1"


def test_a_value_no_key_opens_reads_as_nothing(stored, settings):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-key-" + "x" * 40, []

    assert ExternalSession.objects.get(pk=stored.pk).refresh_token == ""
