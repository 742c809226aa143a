"""Mail the notices of time-bound access ending soon now (the worker runs it every NOTIFY_EXPIRING_EVERY seconds)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from groups_app.services.approvals.expiry import expiry_notices_send


class Command(BaseCommand):
    help = (
        "Mail the member and the group's owners of each membership ending within EXPIRY_NOTICE_DAYS "
        "(once per notice; renewing starts the notices again, 'let it expire' stops them). Safe to repeat."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        notified = expiry_notices_send()
        for access_request in notified:
            self.stdout.write(
                f"Notified: {access_request.email} in {access_request.group_name}, ends {access_request.needed_until:%Y-%m-%d}"
            )
        self.stdout.write(f"{len(notified)} notice{'s' if len(notified) != 1 else ''} sent.")
