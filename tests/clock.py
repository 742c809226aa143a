"""A clock tests move by hand: per-minute limits are then decided by the test, never by when it runs."""

from datetime import UTC, datetime, timedelta

from django.utils import timezone


class FrozenClock:
    """Stands in for `django.utils.timezone.now` (install it with `frozen_clock`)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def frozen_clock(monkeypatch, start: datetime | None = None) -> FrozenClock:
    """Freeze `timezone.now()` five seconds into a minute (or at `start`)."""
    clock = FrozenClock(start or datetime(2026, 12, 3, 10, 0, 5, tzinfo=UTC))
    monkeypatch.setattr(timezone, "now", clock)
    return clock
