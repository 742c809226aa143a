"""Read the workspace into the mirror now (the worker does it on a schedule).

Exit status: 0 when the sync succeeded (or one of the same scope was running already and
nothing was started), 1 when it failed: the mirror then keeps its earlier state.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from groups_app.models import SyncRun
from groups_app.services.mirror.sync import refresh_group, sync_changed, sync_workspace


class Command(BaseCommand):
    help = (
        "Run a full sync of the workspace mirror now (a quick pass with --changed-only, "
        "or refresh one group with --group). Exits 1 when the sync failed."
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
        if run.status == SyncRun.Status.SUCCEEDED:
            for note in run.errors:  # e.g. a page size Segment refused
                self.stdout.write(note)
            return
        reasons = "; ".join(run.errors) or "no reason was recorded"
        raise CommandError(
            f"Sync #{run.pk} failed: {reasons}. A read that met a transient failure was retried up to "
            f"{settings.SEGMENT_MAX_RETRIES} times (SEGMENT_MAX_RETRIES). The mirror keeps its earlier "
            f"state; the worker syncs "
            f"again every {settings.MIRROR_QUICK_SYNC_EVERY} s (MIRROR_QUICK_SYNC_EVERY), and Refresh on the group "
            "list asks for a sync now.",
            returncode=1,
        )
