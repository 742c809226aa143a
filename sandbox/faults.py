"""Injected failures, for tests and benchmarks: make an operation answer 429, 500 or 503,
hang past the client's timeout (and then perform the call), or perform the call and then
answer 500 ("applied-500": the reply is lost, the change is made), for its next N calls.

Planned faults live in the cache, so every worker sees them. They come from
`inject_fault()` or from the SANDBOX_FAULTS setting ("operation=kind*count,…").
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache

KINDS = ("429", "500", "503", "hang", "applied-500")
_PREFIX = "sandbox:fault:"
_SEEDED = "sandbox:faults-seeded:"


def parse_faults(spec: str, known_operations: tuple[str, ...]) -> dict[str, tuple[str, int]]:
    """Parse "op=kind*count,op2=kind" into {op: (kind, count)}; a missing count means 1.

    Raises:
        ValueError: a part that cannot be read, or an operation the API does not have.
    """
    faults: dict[str, tuple[str, int]] = {}
    expected = f"expected operation={'|'.join(KINDS)}[*count]"
    for item in filter(None, (part.strip() for part in spec.split(","))):
        operation, _, rule = item.partition("=")
        kind, _, count = rule.partition("*")
        operation, kind, count = operation.strip(), kind.strip(), count.strip()
        if not operation or kind not in KINDS or (count and not count.isdigit()) or count == "0":
            raise ValueError(f"SANDBOX_FAULTS: cannot read {item!r}; {expected}.")
        if operation not in known_operations:
            raise ValueError(
                f"SANDBOX_FAULTS names an unknown operation {operation!r}; "
                f"known operations: {', '.join(known_operations)}."
            )
        faults[operation] = (kind, int(count or 1))
    return faults


def inject_fault(operation: str, kind: str, times: int = 1) -> None:
    """Make the next `times` calls of `operation` fail with `kind`."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    cache.set(_PREFIX + operation, (kind, times), timeout=None)


def take_fault(operation: str, known_operations: tuple[str, ...]) -> str | None:
    """The fault planned for this call of `operation`, if any, counting it as used.

    SANDBOX_FAULTS is planned once per value (workers share the cache): a changed value
    takes effect when the server restarts with it, even if the cache outlived the server.
    """
    spec = settings.SANDBOX_FAULTS
    if spec and cache.add(_seeded_key(spec), True, timeout=None):
        for name, (kind, times) in parse_faults(spec, known_operations).items():
            cache.set(_PREFIX + name, (kind, times), timeout=None)
    planned = cache.get(_PREFIX + operation)
    if not planned:
        return None
    kind, remaining = planned
    if remaining <= 1:
        cache.delete(_PREFIX + operation)
    else:
        cache.set(_PREFIX + operation, (kind, remaining - 1), timeout=None)
    return kind


def _seeded_key(spec: str) -> str:
    return _SEEDED + hashlib.sha256(spec.encode()).hexdigest()[:16]
