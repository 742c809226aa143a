"""Per-token, per-minute request budgets, kept in the cache so every worker shares them."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from django.core.cache import cache

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Budget:
    limit: int
    consumed: int
    resets_at: float  # epoch seconds

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.consumed)

    @property
    def exceeded(self) -> bool:
        return self.consumed > self.limit

    @property
    def ms_before_next(self) -> int:
        return max(0, int((self.resets_at - time.time()) * 1000))

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Consumed": str(self.consumed),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": format_datetime(datetime.fromtimestamp(self.resets_at, UTC), usegmt=True),
        }


def consume(token: str, kind: str, limit: int) -> Budget:
    """Count one call of `kind` ("write" or "read") against the token's budget this minute."""
    window = int(time.time() // WINDOW_SECONDS)
    token_key = hashlib.sha256(token.encode()).hexdigest()[:16]
    key = f"sandbox:rate:{kind}:{token_key}:{window}"
    cache.add(key, 0, timeout=WINDOW_SECONDS * 2)
    try:
        consumed = cache.incr(key)
    except ValueError:  # the key expired between add() and incr()
        cache.set(key, 1, timeout=WINDOW_SECONDS * 2)
        consumed = 1
    return Budget(limit=limit, consumed=consumed, resets_at=(window + 1) * WINDOW_SECONDS)
