"""CSV exports: streamed in chunks, with a cap on how many run at once across all processes.

A large export holds a web worker thread for as long as the download lasts, so the number of
exports in flight is capped through the shared cache (`EXPORT_CONCURRENCY` slots), and each
account holds at most one of them: one person's slow downloads cannot block everyone else's.
A slot expires after `EXPORT_SLOT_SECONDS`, so one lost by a crashed process frees itself.
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
ACCOUNT_KEY = "groups:export-account:{}"
OWN_EXPORT_RUNNING = (
    "Your previous export is still being downloaded: one export at a time per account. "
    "Let it finish, or cancel it."
)
OTHERS_EXPORTING = "Other people's exports are being prepared right now."


class ExportsBusy(Exception):
    """No export may start now: this account has one running, or every slot is taken.
    `message` says which; the caller should try again shortly."""

    def __init__(self, message: str = OTHERS_EXPORTING, *, is_own: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.is_own = is_own


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


def take_export_slot(owner: str = "") -> tuple[tuple[str, ...], str]:
    """Claim the account's export (when `owner` is given) and one of the shared slots.

    Returns the keys claimed and their token, for `release_export_slot`.

    Raises:
        ExportsBusy: the account already has an export running (`is_own`), or every slot is taken.
    """
    token = uuid.uuid4().hex
    claimed: tuple[str, ...] = ()
    if owner:
        account_key = ACCOUNT_KEY.format(owner)
        if not cache.add(account_key, token, timeout=settings.EXPORT_SLOT_SECONDS):
            raise ExportsBusy(OWN_EXPORT_RUNNING, is_own=True)
        claimed = (account_key,)
    for number in range(max(1, settings.EXPORT_CONCURRENCY)):
        key = SLOT_KEY.format(number)
        if cache.add(key, token, timeout=settings.EXPORT_SLOT_SECONDS):
            return (*claimed, key), token
    release_export_slot(claimed, token)
    raise ExportsBusy(OTHERS_EXPORTING)


def release_export_slot(keys: tuple[str, ...], token: str) -> None:
    """Free the slots if they are still ours (one may have expired and been claimed by another export)."""
    for key in keys:
        if cache.get(key) == token:
            cache.delete(key)


def within_export_slot(chunks: Iterator[str], *, owner: str = "") -> Iterator[str]:
    """Claim the account's export and a shared slot now (so a busy server can still answer
    with a page instead of a broken download); the returned stream gives them back when it
    ends, fails or is closed.

    Raises:
        ExportsBusy: see `take_export_slot`.
    """
    keys, token = take_export_slot(owner)
    return _SlotStream(chunks, keys, token)


class _SlotStream:
    """An iterator that holds an export slot until it is exhausted or closed.

    A class rather than a generator: Django closes a streamed response's content when the
    download ends or the client goes away, and closing a generator that never started would
    not run its `finally`.
    """

    def __init__(self, chunks: Iterator[str], keys: tuple[str, ...], token: str) -> None:
        self._chunks = iter(chunks)
        self._keys = keys
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
            release_export_slot(self._keys, self._token)
        close_chunks = getattr(self._chunks, "close", None)
        if close_chunks:
            close_chunks()
