"""Make sure the demo accounts of `make run` exist: admin, helpdesk and viewer."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from groups_app import roles

DEMO_ACCOUNTS = (
    ("admin", roles.ADMINISTRATOR, True),
    # A second Administrator: what the two-person rule needs (a privileged group's change is
    # filed by one Administrator and approved by another).
    ("admin2", roles.ADMINISTRATOR, False),
    ("helpdesk", roles.HELP_DESK, False),
    ("viewer", roles.VIEWER, False),
)


def sign_in_address() -> str:
    """Where `make run` serves: SITE_URL (which it sets from PORT), else 127.0.0.1 on PORT."""
    return settings.SITE_URL or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"


class Command(BaseCommand):
    help = "Create the demo accounts (admin, helpdesk, viewer) if missing; DEMO_PASSWORD sets their password."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.SANDBOX_MODE:
            raise CommandError(
                "Demo accounts exist only in sandbox mode: in live mode people sign in with their own "
                "accounts (single sign-on, or `manage.py createsuperuser`)."
            )
        User = get_user_model()
        configured = settings.DEMO_PASSWORD
        missing = [entry for entry in DEMO_ACCOUNTS if not User.objects.filter(username=entry[0]).exists()]
        password = configured or (secrets.token_urlsafe(12) if missing else "")
        for username, role, is_superuser in DEMO_ACCOUNTS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "email": f"{username}@group-admin.example",
                    "is_staff": is_superuser,
                    "is_superuser": is_superuser,
                },
            )
            if created or configured:
                user.set_password(password)
                user.save()
            user.groups.add(Group.objects.get(name=role))
        names = ", ".join(name for name, _, _ in DEMO_ACCOUNTS)
        if missing and not configured:
            # Accounts that existed keep their password: the new one is only the new accounts'.
            made = ", ".join(name for name, _, _ in missing)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo accounts {made} created. Sign in at {sign_in_address()} as {missing[0][0]} "
                    f"with the password (shown once): {password}"
                )
            )
        elif configured:
            self.stdout.write(f"Demo accounts {names} use the password from DEMO_PASSWORD.")
        else:
            self.stdout.write(
                f"Demo accounts {names} already exist; their password is unchanged (set DEMO_PASSWORD to reset it)."
            )
