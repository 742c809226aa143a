"""Servers the benchmarks start on loopback ports, and stop when done (not a command)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from django.core.management.base import CommandError


def benchmark_env(**extra: str) -> dict[str, str]:
    """The environment of a benchmark server: this one's, in DEBUG, quiet logs, plus `extra`."""
    return {**os.environ, "DEBUG": "true", "LOG_LEVEL": "WARNING", **extra}


def sandbox_command(port: int) -> list[str]:
    return [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]


@contextmanager
def loopback_server(command: list[str], env: dict[str, str], port: int, name: str) -> Iterator[None]:
    """Run `command` until the block ends, once its /healthz answers on 127.0.0.1:`port`.

    Raises:
        CommandError: it did not answer within 30 s, or it exited.
    """
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        ready_by = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > ready_by or process.poll() is not None:
                    raise CommandError(f"The {name} server did not start on port {port}.") from None
                time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(timeout=15)
