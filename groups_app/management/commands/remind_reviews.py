"""Remind reviewers of open reviews due soon (the worker runs it every REMIND_REVIEWS_EVERY seconds)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from groups_app.services.reviews import reviews_remind


class Command(BaseCommand):
    help = "Email the reviewer of each open review due within REVIEW_REMINDER_DAYS, once per due date."

    def handle(self, *args: Any, **options: Any) -> None:
        for review in reviews_remind():
            self.stdout.write(f"Reminded: {review.group_name} (due {review.due_date:%Y-%m-%d})")
