"""Start-up as an operator meets it: the mode is explicit, and the documented production
settings pass `manage.py check --deploy` with no error and no warning."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# The production settings the README documents (values are examples).
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "groups.example.com",
    "SEGMENT_MODE": "live",
    "SEGMENT_API_TOKEN": "sgp_example",
    "EMAIL_HOST": "smtp.example.com",
    "SITE_URL": "https://groups.example.com",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py in a clean environment (nothing from this test run, no .env defaults)."""
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run(  # noqa: S603 - our own manage.py with fixed arguments
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_the_documented_production_settings_pass_check_deploy():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SEGMENT_MODE": "live"}, "SEGMENT_MODE=live needs SEGMENT_API_TOKEN"),
        ({"SEGMENT_MODE": "sandbox", "SEGMENT_API_TOKEN": "sgp_x"}, "set SEGMENT_MODE=live"),
        ({"SEGMENT_MODE": "sandbox"}, "refuses to run with DEBUG off"),
        ({}, "refuses to run with DEBUG off"),  # sandbox is never implied by a missing token in production
        ({"SANDBOX_ALLOW_WITHOUT_DEBUG": "true"}, "needs a secret SANDBOX_API_TOKEN"),
        ({"SEGMENT_MODE": "staging"}, "must be sandbox or live"),
    ],
)
def test_an_unsafe_or_unclear_mode_refuses_to_start(env, message):
    result = manage("check", DEBUG="false", SECRET_KEY="k" * 50, **env)

    assert result.returncode != 0
    assert message in result.stderr


def test_a_demo_sandbox_runs_with_debug_off_only_when_allowed_and_with_its_own_token():
    result = manage(
        "check",
        DEBUG="false",
        SECRET_KEY="k" * 50,
        SANDBOX_ALLOW_WITHOUT_DEBUG="true",
        SANDBOX_API_TOKEN=secrets.token_urlsafe(20),
    )

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SITE_URL": ""}, "EMAIL_HOST is set, so Group Admin sends mail, but SITE_URL is not"),
        ({"SITE_URL": "groups.example.com"}, "SITE_URL must be the dashboard's address"),
        ({"SITE_URL": "javascript:alert(1)"}, "SITE_URL must be the dashboard's address"),
        ({"SITE_URL": "https://groups.example.com/?next=x"}, "SITE_URL must be the dashboard's address"),
    ],
)
def test_mail_outside_debug_refuses_to_start_without_a_usable_site_url(env, message):
    result = manage("check", **{**PRODUCTION, **env})

    assert result.returncode != 0
    assert message in result.stderr


def test_without_a_mail_server_or_with_debug_on_no_site_url_is_needed():
    without_mail = {k: v for k, v in PRODUCTION.items() if k not in ("EMAIL_HOST", "SITE_URL")}

    assert manage("check", **without_mail).returncode == 0
    assert manage("check", DEBUG="true", EMAIL_HOST="smtp.example.com").returncode == 0


def test_make_run_needs_no_configuration():
    result = manage("check", DEBUG="true")

    assert result.returncode == 0, result.stderr


def test_the_sandbox_api_refuses_the_public_default_token_with_debug_off(client, db, settings):
    settings.SANDBOX_API_TOKEN = settings.SANDBOX_DEFAULT_TOKEN

    response = client.get("/sandbox/api/groups", headers={"Authorization": "Bearer sandbox-token"})

    assert response.status_code == 401


def test_the_container_probe_sends_the_allowed_host(live_server, settings):
    from urllib.parse import urlsplit

    settings.ALLOWED_HOSTS = ["groups.example.com"]  # 127.0.0.1 would be refused
    port = urlsplit(live_server.url).port
    env = {"PATH": os.environ["PATH"], "PORT": str(port), "ALLOWED_HOSTS": "groups.example.com,other"}
    result = subprocess.run(
        [sys.executable, "scripts/probe", "/healthz"], cwd=ROOT, env=env, capture_output=True, timeout=30
    )

    assert result.returncode == 0, result.stderr


def test_compose_migrates_once_as_the_owner_then_serves_as_the_app_role():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    migrate, web, worker, db = (services[name] for name in ("migrate", "web", "worker", "db"))

    assert migrate["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert migrate["restart"] == "no"
    assert migrate["environment"]["DATABASE_URL"].startswith("postgres://groupadmin:")
    app_role = migrate["environment"]["DATABASE_APP_ROLE"]
    assert app_role == db["environment"]["POSTGRES_APP_USER"] != db["environment"]["POSTGRES_USER"]
    for service in (web, worker):
        assert service["environment"]["DATABASE_URL"].startswith(f"postgres://{app_role}:")
        assert service["environment"]["POSTGRES_PASSWORD"] == ""  # not the owner's, from .env
    assert web["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert worker["depends_on"]["web"] == {"condition": "service_healthy"}
    assert "manage.py migrate" not in (ROOT / "scripts" / "docker-entrypoint").read_text()
