"""Read the workspace into the mirror now (the worker does it on a schedule)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from groups_app.models import SyncRun
from groups_app.services.mirror.sync import refresh_group, sync_changed, sync_workspace


class Command(BaseCommand):
    help = (
        "Run a full sync of the workspace mirror now (a quick pass with --changed-only, "
        "or refresh one group with --group)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--group", default="", help="Refresh only this group id.")
        parser.add_argument(
            "--changed-only",
            action="store_true",
            help="A quick pass: the group listing, then only the groups that changed "
            "(and a share of those read longest ago).",
        )

    def handle(self, *args: Any, group: str, changed_only: bool, verbosity: int, **options: Any) -> None:
        if verbosity < 2:  # one log line per upstream call would bury the summary
            logging.getLogger("groups_app.segment").setLevel(logging.WARNING)
        if group:
            run = refresh_group(group, trigger="manage.py sync_mirror")
        elif changed_only:
            run = sync_changed(trigger="manage.py sync_mirror --changed-only")
        else:
            run = sync_workspace(trigger="manage.py sync_mirror")
        if run is None:
            self.stdout.write("A sync of the same scope is running already; nothing started.")
            return
        seconds = run.duration.total_seconds() if run.duration else 0
        self.stdout.write(
            f"{run.get_kind_display()} #{run.pk} {run.get_status_display().lower()}: "
            f"{run.group_count} groups listed, {run.groups_read} read whole "
            f"({run.rotated_count} by rotation), {run.member_count} members, {run.calls} calls, {run.pages} pages of {run.page_size}, "
            f"{run.observed_count} observed outside Group Admin, {seconds:.1f} s."
        )
        for error in run.errors:
            self.stderr.write(error)
        if run.status != SyncRun.Status.SUCCEEDED:
            raise SystemExit(1)
