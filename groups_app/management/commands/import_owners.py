"""Set group owners in bulk from a CSV: a dry run by default, `--apply` to make the changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.owners import owners_csv_rows, owners_import

# Larger files are refused before they are read.
MAX_FILE_BYTES = 5 * 1024 * 1024


class Command(BaseCommand):
    help = (
        "Import group owners from a CSV with the columns group (an id or the exact name) and owner "
        "(an email or a username). Without --apply it only prints what would change; with --apply "
        "each owner added is an audit entry in the name of --as (an Administrator's account)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="The CSV file (UTF-8).")
        parser.add_argument("--apply", action="store_true", help="Make the changes (default: a dry run).")
        parser.add_argument(
            "--as",
            dest="actor",
            required=True,
            help="The username of the Administrator the changes are made by.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = get_user_model().objects.filter(username=options["actor"], is_active=True).first()
        if actor is None:
            raise CommandError(f"No active account named {options['actor']}.")
        path = Path(options["file"])
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise CommandError(f"{path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB.")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from None
        try:
            result = owners_import(actor=actor, rows=owners_csv_rows(text), apply=options["apply"])
        except (InvalidInput, NotAllowed) as exc:
            raise CommandError(exc.message) from None
        for row in result.rows:
            (self.stderr if row.outcome == "problem" else self.stdout).write(row.describe())
        added, already, problems = result.count("add"), result.count("already"), result.count("problem")
        if result.applied:
            self.stdout.write(
                f"Added {added} owners; {already} were owners already; {problems} lines not done."
            )
        else:
            self.stdout.write(
                f"Dry run: {added} owners would be added; {already} are owners already; "
                f"{problems} lines cannot be done. Run again with --apply to make the changes."
            )
        if problems:
            raise SystemExit(1)
