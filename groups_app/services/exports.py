"""CSV exports: streamed in chunks, with a cap on how many run at once across all processes.

A large export holds a web worker thread for as long as the download lasts, so the number of
exports in flight is capped through the shared cache (`EXPORT_CONCURRENCY` slots). A slot
expires after `EXPORT_SLOT_SECONDS`, so one lost by a crashed process frees itself.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.core.cache import cache

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHUNK_CHARS = 64 * 1024
SLOT_KEY = "groups:export-slot:{}"


class ExportsBusy(Exception):
    """Every export slot is taken; the caller should try again shortly."""


def spreadsheet_safe(value: object) -> str:
    """A cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_chunks(header: Iterable[str], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """The header and rows as CSV text in chunks of about 64 KiB, every cell spreadsheet-safe.

    One chunk per row would cost a write to the socket per row; one string for the whole file
    would cost memory in proportion to it. Chunks keep both bounded.
    """
    writer = csv.writer(_Echo())
    buffer = [writer.writerow(header)]
    size = len(buffer[0])
    for row in rows:
        line = writer.writerow(spreadsheet_safe(value) for value in row)
        buffer.append(line)
        size += len(line)
        if size >= CHUNK_CHARS:
            yield "".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer)


def take_export_slot() -> tuple[str, str]:
    """Claim one of the export slots, or raise ExportsBusy. Returns the slot's key and token."""
    token = uuid.uuid4().hex
    for number in range(max(1, settings.EXPORT_CONCURRENCY)):
        key = SLOT_KEY.format(number)
        if cache.add(key, token, timeout=settings.EXPORT_SLOT_SECONDS):
            return key, token
    raise ExportsBusy


def release_export_slot(key: str, token: str) -> None:
    """Free the slot if it is still ours (it may have expired and been claimed by another export)."""
    if cache.get(key) == token:
        cache.delete(key)


def within_export_slot(chunks: Iterator[str]) -> Iterator[str]:
    """Claim a slot now (so a busy server can still answer with a page instead of a broken
    download); the returned stream gives it back when it ends, fails or is closed."""
    key, token = take_export_slot()
    return _SlotStream(chunks, key, token)


class _SlotStream:
    """An iterator that holds an export slot until it is exhausted or closed.

    A class rather than a generator: Django closes a streamed response's content when the
    download ends or the client goes away, and closing a generator that never started would
    not run its `finally`.
    """

    def __init__(self, chunks: Iterator[str], key: str, token: str) -> None:
        self._chunks = iter(chunks)
        self._key = key
        self._token = token
        self._released = False

    def __iter__(self) -> _SlotStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._released:
            self._released = True
            release_export_slot(self._key, self._token)
        close_chunks = getattr(self._chunks, "close", None)
        if close_chunks:
            close_chunks()
