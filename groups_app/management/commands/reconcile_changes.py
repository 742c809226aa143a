"""Resolve changes whose outcome Segment did not confirm: run every few minutes (cron or the worker)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from groups_app.services.reconcile import reconcile_changes


class Command(BaseCommand):
    help = (
        "Read back what each change with an unknown outcome touched (entries left pending by a "
        "process that died included) and record whether it was applied, not applied or partly "
        "applied, as 'system'. Also rescues access requests stuck between approval and provisioning. "
        "Safe to run repeatedly; an entry that cannot be read back now is tried on the next run."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        run = reconcile_changes()
        resolved = ", ".join(
            f"{count} {name.replace('_', ' ')}" for name, count in sorted(run.resolved.items())
        )
        self.stdout.write(f"Left pending by a stopped process: {run.abandoned}.")
        self.stdout.write(f"Reconciled: {resolved or 'none'}.")
        self.stdout.write(f"Still unknown (Segment could not be read): {run.still_unknown}.")
        self.stdout.write(f"Access requests recovered: {run.requests_recovered}.")
        if run.still_unknown:
            raise SystemExit(1)
