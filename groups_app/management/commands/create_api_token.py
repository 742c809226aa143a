"""Create a personal API token for an account; the token is printed once, as the last line."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from groups_app.models import ApiToken
from groups_app.services.api_tokens import api_token_create
from groups_app.services.audit import SYSTEM
from groups_app.services.errors import InvalidInput


class Command(BaseCommand):
    help = (
        "Create an API token for USERNAME (REST API and MCP). It acts as that account within its "
        "scope, never beyond its role; the token is printed once, as the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--scope", required=True, choices=ApiToken.Scope.values)
        parser.add_argument("--name", default="", help="What uses it (default: the scope and the date).")
        parser.add_argument(
            "--expires-days", type=int, default=None, help="Days until it expires (default: never)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"], is_active=True).first()
        if user is None:
            raise CommandError(f"No active account named {options['username']!r}.")
        name = options["name"] or f"{options['scope']} token"
        try:
            new = api_token_create(
                actor=SYSTEM,
                user=user,
                name=name,
                scope=options["scope"],
                expires_days=options["expires_days"],
            )
        except InvalidInput as exc:
            raise CommandError(exc.message) from None
        expires = (
            f"expires {new.token.expires_at:%Y-%m-%d %H:%M %Z}" if new.token.expires_at else "never expires"
        )
        self.stderr.write(
            f"Created the API token “{new.token.name}” for {user.get_username()} (scope {new.token.scope}, {expires}). "
            "It is shown only now:"
        )
        self.stdout.write(new.secret)
