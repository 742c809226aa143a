"""ensure_demo_users: the accounts `make run` signs people in with."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from groups_app import roles

pytestmark = pytest.mark.django_db


def run():
    out = StringIO()
    call_command("ensure_demo_users", stdout=out)
    return out.getvalue()


def test_generated_password_is_printed_once_and_works():
    first = run()
    password = first.rsplit(": ", 1)[1].strip()

    second = run()

    assert password not in second and "unchanged" in second
    admin = authenticate(username="admin", password=password)
    assert admin is not None and admin.is_superuser
    helpdesk = authenticate(username="helpdesk", password=password)
    assert roles.role_label(helpdesk) == roles.HELP_DESK
    assert roles.role_label(authenticate(username="viewer", password=password)) == roles.VIEWER
    second_administrator = authenticate(username="admin2", password=password)
    assert roles.role_label(second_administrator) == roles.ADMINISTRATOR
    assert not second_administrator.is_superuser


def test_an_account_added_to_the_demo_later_gets_a_password_of_its_own_and_says_so():
    password = run().rsplit(": ", 1)[1].strip()
    get_user_model().objects.filter(username="admin2").delete()

    output = run()

    assert "Demo accounts admin2 created" in output and "as admin2 with" in output
    assert authenticate(username="admin2", password=output.rsplit(": ", 1)[1].strip()) is not None
    assert authenticate(username="admin", password=password) is not None


def test_demo_password_setting_sets_every_account(settings):
    run()
    settings.DEMO_PASSWORD = "a-chosen-demo-password"

    output = run()

    assert "a-chosen-demo-password" not in output
    assert authenticate(username="viewer", password="a-chosen-demo-password") is not None


def test_the_sign_in_address_is_the_one_make_run_serves(settings, monkeypatch):
    settings.SITE_URL = "http://127.0.0.1:8190"
    monkeypatch.setenv("PORT", "8000")

    assert "Sign in at http://127.0.0.1:8190 as admin" in run()
