"""Browser tests: Playwright drives the system Chromium against Django's live server."""

import contextlib
import os
from io import StringIO
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# (seeding, users) are ordinary synchronous calls, so Django's async guard is lifted here only.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; `make test` installs it (apt-get install chromium).")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
        ],
    }


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def workspace(transactional_db):
    """The seeded sandbox: All Employees (450 users, 30 invites), an empty group, an HTML name;
    read into the mirror, as the worker would have."""
    from django.core.management import call_command

    from groups_app.services.mirror.sync import sync_workspace
    from sandbox.models import UserGroup

    call_command("seed_sandbox", "--groups", "6", "--users", "450", stdout=StringIO())
    sync_workspace(trigger="test")
    return {group.name: group for group in UserGroup.objects.all()}


@pytest.fixture
def viewer_account(transactional_db):
    from tests.factories import viewer

    return viewer(username="vera")


def sign_in(page, live_server, username="vera", password=PASSWORD):
    page.goto(live_server.url + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@pytest.fixture
def admin_account(transactional_db):
    from tests.factories import administrator

    return administrator(username="ada")


@pytest.fixture
def help_desk_account(transactional_db):
    from tests.factories import help_desk

    return help_desk(username="hana")


@pytest.fixture
def page(transactional_db, page):
    """Playwright's page, closed before the database is emptied after the test: a request the
    page still has in flight (an htmx refresh after the last assertion) would otherwise hold a
    table that the flush needs, and PostgreSQL ends one of them as a deadlock."""
    yield page
    with contextlib.suppress(PlaywrightError):  # a page that never settles is closed all the same
        page.wait_for_load_state("networkidle", timeout=5000)
    page.close()
