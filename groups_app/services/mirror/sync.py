"""Reading Segment into the mirror.

- `sync_workspace()` reads everything, with the largest page size the API accepts, as many
  listings side by side as `MIRROR_SYNC_CONCURRENCY` and the shared read budget allow;
- `refresh_group()` re-reads one group, after every change made through Group Admin.

Both read first and write after, in one transaction: a reader sees the mirror before or
after a sync, never half of one, and a sync that dies leaves the mirror as it was (its run
is marked abandoned once its heartbeat is stale, and the next one starts over). Writing, they
compare what they read with what the mirror held (`drift`).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from groups_app.models import AuditEntry, MirrorGroup, MirrorMember, MirrorRole, SyncRun
from groups_app.segment import (
    IamRole,
    NotFound,
    Page,
    SegmentClient,
    SegmentError,
    UserGroup,
    ValidationFailed,
    WorkspaceUser,
    iterate_pages,
)
from groups_app.services import queue
from groups_app.services.audit import describe_error
from groups_app.services.grants import describe
from groups_app.services.mirror.drift import (
    Difference,
    GroupSnapshot,
    MemberRow,
    difference_between,
    record_unexplained,
)
from groups_app.services.mirror.selectors import (
    mirrored_roles,
    pending_sync_requests,
    permission_records,
    stored_permissions,
)
from groups_app.services.notifications import notify_observed_changes
from groups_app.services.segment_client import get_client

logger = logging.getLogger("groups_app.mirror")


T = TypeVar("T")

FALLBACK_PAGE_SIZE = 200
PAGE_SIZE_KEY = "mirror:page-size:v1"
PAGE_SIZE_MEMORY = 24 * 3600
HEARTBEAT_SECONDS = 5.0
GROUP_REFRESH_STALE_SECONDS = 120


class SyncAbandoned(Exception):
    """The run was marked abandoned by another process (its heartbeat looked stale)."""


# --- reading -------------------------------------------------------------------------------


class ReadBudget:
    """Upstream reads per second, counted in the shared cache so that every process's syncs
    together stay within `MIRROR_READS_PER_SECOND`."""

    def __init__(
        self,
        per_second: int | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.per_second = max(1, per_second or settings.MIRROR_READS_PER_SECOND)
        self._sleep = sleep
        self._clock = clock

    def take(self) -> None:
        """Wait until one more read fits in the current second's budget."""
        while True:
            now = self._clock()
            key = f"mirror:reads:{int(now)}"
            cache.add(key, 0, timeout=5)
            try:
                used = cache.incr(key)
            except ValueError:  # the key expired between add and incr: take the next second's
                continue
            if used <= self.per_second:
                return
            self._sleep(max(0.01, int(now) + 1 - now))


class Reader:
    """Walks listings for a sync: counts calls and pages, takes the read budget before each call,
    and falls back to 200 items a page when the API refuses a larger count."""

    def __init__(self, client: SegmentClient, budget: ReadBudget, page_size: int | None = None) -> None:
        self.client = client
        self.budget = budget
        self.page_size = page_size or cache.get(PAGE_SIZE_KEY) or settings.MIRROR_PAGE_SIZE
        self.calls = 0
        self.pages = 0
        self.notes: list[str] = []
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], T]) -> T:
        self.budget.take()
        with self._lock:
            self.calls += 1
        return fn()

    def all_pages(self, fetch: Callable[..., Page[T]]) -> tuple[T, ...]:
        def counted_page(cursor: str | None) -> Page[T]:
            page = self._page(fetch, cursor)
            with self._lock:
                self.pages += 1
            return page

        return tuple(iterate_pages(counted_page))

    def _page(self, fetch: Callable[..., Page[T]], cursor: str | None) -> Page[T]:
        size = self.page_size
        try:
            return self.call(lambda: fetch(count=size, cursor=cursor))
        except ValidationFailed as exc:
            refused_count = any("count" in name for name in exc.field_errors) or "count" in exc.message
            if cursor is not None or size <= FALLBACK_PAGE_SIZE or not refused_count:
                raise
            with self._lock:
                if self.page_size > FALLBACK_PAGE_SIZE:
                    self.page_size = FALLBACK_PAGE_SIZE
                    self.notes.append(
                        f"Segment refused {size} items a page; read {FALLBACK_PAGE_SIZE} a page."
                    )
            cache.set(PAGE_SIZE_KEY, FALLBACK_PAGE_SIZE, timeout=PAGE_SIZE_MEMORY)
            return self.call(lambda: fetch(count=FALLBACK_PAGE_SIZE, cursor=None))

    def snapshot(self, group: UserGroup, *, trust_member_count: bool) -> GroupSnapshot:
        """Every user and invite of `group`. With `trust_member_count`, listings that the group's
        member count shows to be empty are not read (memberCount counts users and invites)."""
        read_at = timezone.now()
        users: tuple[WorkspaceUser, ...] = ()
        invites: tuple[str, ...] = ()
        if not trust_member_count or group.member_count > 0:
            users = self.all_pages(lambda **page: self.client.list_users_from_user_group(group.id, **page))
        if not trust_member_count or group.member_count > len(users):
            invites = self.all_pages(
                lambda **page: self.client.list_invites_from_user_group(group.id, **page)
            )
        return GroupSnapshot(group=group, users=users, invites=invites, read_at=read_at)


# --- runs ----------------------------------------------------------------------------------


def _claim(kind: str, group_id: str, trigger: str) -> SyncRun | None:
    """Start a run of this scope, unless one is running; a stale running one is abandoned first."""
    now = timezone.now()
    # A group's refresh takes seconds: one silent for two minutes is dead, and must not hold
    # back the refreshes of its group for as long as a full sync would.
    silence = settings.MIRROR_SYNC_STALE_SECONDS
    if kind == SyncRun.Kind.GROUP:
        silence = min(silence, GROUP_REFRESH_STALE_SECONDS)
    stale = now - timedelta(seconds=silence)
    SyncRun.objects.filter(
        kind=kind, group_id=group_id, status=SyncRun.Status.RUNNING, heartbeat_at__lt=stale
    ).update(
        status=SyncRun.Status.ABANDONED,
        finished_at=now,
        errors=["No sign of life: the process running it stopped. The mirror kept its earlier state."],
    )
    try:
        with transaction.atomic():
            return SyncRun.objects.create(
                kind=kind, group_id=group_id, trigger=trigger[:200], started_at=now, heartbeat_at=now
            )
    except IntegrityError:
        return None


def _heartbeat(run: SyncRun) -> None:
    alive = SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.RUNNING).update(
        heartbeat_at=timezone.now()
    )
    if not alive:
        raise SyncAbandoned(f"Sync #{run.pk} was abandoned by another process.")


def _finish(run: SyncRun, status: str, reader: Reader | None, errors: Iterable[str] = ()) -> SyncRun:
    run.status = status
    run.finished_at = timezone.now()
    if reader is not None:
        run.calls, run.pages, run.page_size = reader.calls, reader.pages, reader.page_size
        run.errors = [*reader.notes, *errors]
    else:
        run.errors = list(errors)
    SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.RUNNING).update(
        status=run.status,
        finished_at=run.finished_at,
        calls=run.calls,
        pages=run.pages,
        page_size=run.page_size,
        errors=run.errors,
        group_count=run.group_count,
        member_count=run.member_count,
        observed_count=run.observed_count,
    )
    return run


def sync_workspace(
    *, trigger: str = "schedule", client: SegmentClient | None = None, budget: ReadBudget | None = None
) -> SyncRun | None:
    """Read the whole workspace into the mirror. Returns the run, or None when a full sync is
    already running (it is never run twice at once). A failure is recorded on the run."""
    run = _claim(SyncRun.Kind.FULL, "", trigger)
    if run is None:
        logger.info("A full sync is already running; not starting another")
        return None
    SyncRun.objects.filter(
        kind=SyncRun.Kind.FULL, status=SyncRun.Status.REQUESTED
    ).delete()  # this run answers them
    client = client or get_client()
    reader = Reader(client, budget or ReadBudget())
    try:
        roles = reader.all_pages(client.list_roles)
        groups = reader.all_pages(client.list_user_groups)
        snapshots = _read_groups(run, reader, groups, concurrent=client.concurrent_requests)
        _heartbeat(run)
        with transaction.atomic():
            observed = _apply(run, roles=roles, snapshots=snapshots, complete=True)
    except (SegmentError, SyncAbandoned) as exc:
        logger.warning("The full sync #%s failed: %s", run.pk, exc)
        return _finish(run, SyncRun.Status.FAILED, reader, [describe_error(exc)])
    except BaseException as exc:
        logger.exception("The full sync #%s crashed", run.pk)
        _finish(run, SyncRun.Status.FAILED, reader, [describe_error(exc)])
        raise
    _finish(run, SyncRun.Status.SUCCEEDED, reader)
    _tell_administrators(observed)
    return run


def _read_groups(
    run: SyncRun, reader: Reader, groups: tuple[UserGroup, ...], *, concurrent: bool
) -> list[GroupSnapshot]:
    """Every group's members, side by side when the client allows; the run's heartbeat goes on."""
    last_beat = time.monotonic()

    def beat() -> None:
        nonlocal last_beat
        if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
            _heartbeat(run)
            last_beat = time.monotonic()

    if not concurrent or settings.MIRROR_SYNC_CONCURRENCY <= 1:
        snapshots = []
        for group in groups:
            snapshots.append(reader.snapshot(group, trust_member_count=True))
            beat()
        return snapshots
    with ThreadPoolExecutor(settings.MIRROR_SYNC_CONCURRENCY, thread_name_prefix="mirror-read") as pool:
        pending = {
            pool.submit(contextvars.copy_context().run, reader.snapshot, group, trust_member_count=True)
            for group in groups
        }
        snapshots = []
        try:
            while pending:
                done, pending = wait(pending, timeout=HEARTBEAT_SECONDS, return_when=FIRST_COMPLETED)
                snapshots.extend(future.result() for future in done)
                beat()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return snapshots


def refresh_group(
    group_id: str,
    *,
    trigger: str = "change",
    client: SegmentClient | None = None,
    budget: ReadBudget | None = None,
) -> SyncRun | None:
    """Re-read one group into the mirror (after a change, or before a review). Returns the run,
    or None when this group is being refreshed already."""
    run = _claim(SyncRun.Kind.GROUP, group_id, trigger)
    if run is None:
        return None
    client = client or get_client()
    reader = Reader(client, budget or ReadBudget())
    try:
        try:
            group = reader.call(lambda: client.get_user_group(group_id))
        except NotFound:
            snapshots, gone = [], {group_id}
        else:
            snapshots, gone = [reader.snapshot(group, trust_member_count=False)], set()
        with transaction.atomic():
            observed = _apply(run, roles=None, snapshots=snapshots, complete=False, gone=gone)
    except SegmentError as exc:
        logger.warning("Refreshing group %s failed: %s", group_id, exc)
        return _finish(run, SyncRun.Status.FAILED, reader, [describe_error(exc)])
    except BaseException as exc:
        _finish(run, SyncRun.Status.FAILED, reader, [describe_error(exc)])
        raise
    _finish(run, SyncRun.Status.SUCCEEDED, reader)
    _tell_administrators(observed)
    return run


def request_sync(*, trigger: str) -> bool:
    """Enqueue a full sync for the worker; False when one was requested and has not started yet.

    The request is a row (not a cache key), so every process sees it, with any cache.
    """
    now = timezone.now()
    with transaction.atomic():
        if pending_sync_requests().select_for_update().exists():
            return False
        SyncRun.objects.create(
            kind=SyncRun.Kind.FULL,
            status=SyncRun.Status.REQUESTED,
            trigger=trigger[:200],
            started_at=now,
            heartbeat_at=now,
        )
        queue.enqueue("sync_workspace", trigger=trigger[:200])
    return True


def _apply(
    run: SyncRun,
    *,
    roles: tuple[IamRole, ...] | None,
    snapshots: list[GroupSnapshot],
    complete: bool,
    gone: Iterable[str] = (),
) -> list[AuditEntry]:
    """Write what was read, in the caller's transaction; return the observed-change entries.

    `complete`: the snapshots are the whole workspace, so a mirrored group missing from them was
    deleted (unless it was refreshed after this run began). A group refreshed after this run
    read it keeps the newer reading.
    """
    if roles is not None:
        MirrorRole.objects.all().delete()
        MirrorRole.objects.bulk_create(
            MirrorRole(role_id=r.id, name=r.name, description=r.description) for r in roles
        )
    role_map = mirrored_roles()
    ids = [s.group.id for s in snapshots]
    existing = {g.group_id: g for g in MirrorGroup.objects.select_for_update().filter(group_id__in=ids)}
    # Until a full sync has succeeded there is nothing to compare with: the first one is the baseline.
    baseline = not _earlier_full_sync(run)
    if complete:
        seen = set(ids)
        gone = set(
            MirrorGroup.objects.filter(read_at__lt=run.started_at)
            .exclude(group_id__in=seen)
            .values_list("group_id", flat=True)
        )
    members_before = _members_of(list(existing))
    differences: list[Difference] = []
    now = timezone.now()
    member_total = 0
    for snap in snapshots:
        old = existing.get(snap.group.id)
        if old is not None and old.read_at > snap.read_at:
            member_total += old.member_count
            continue  # refreshed after this run read it: the newer reading stays
        before = members_before.get(snap.group.id, {})
        after = _members_from(snap)
        member_total += len(after)
        if not baseline:
            differences.append(difference_between(old, snap, before, after, role_map))
        group = _store_group(old, snap, run)
        _store_members(group, before, after)
    for group_id in gone:
        old = MirrorGroup.objects.filter(group_id=group_id).first()
        if old is None:
            continue
        if not baseline:
            differences.append(
                Difference(
                    group_id,
                    old.name,
                    deleted=True,
                    removed=sorted(_members_of([group_id]).get(group_id, {})),  # for Undo to re-create
                    previous_read_at=old.read_at,
                    read_at=now,
                    permissions_before=[describe(p, role_map) for p in stored_permissions(old)],
                )
            )
        old.delete()
    observed = record_unexplained(run, [d for d in differences if d])
    run.group_count, run.member_count = len(snapshots), member_total
    run.observed_count = len(observed)
    return observed


def _earlier_full_sync(run: SyncRun) -> bool:
    return (
        SyncRun.objects.filter(kind=SyncRun.Kind.FULL, status=SyncRun.Status.SUCCEEDED)
        .exclude(pk=run.pk)
        .exists()
    )


def _members_of(group_ids: list[str]) -> dict[str, dict[str, tuple[int, MemberRow]]]:
    found: dict[str, dict[str, tuple[int, MemberRow]]] = {}
    rows = MirrorMember.objects.filter(group_id__in=group_ids).values_list(
        "pk", "group_id", "email", "kind", "user_id", "name"
    )
    for pk, group_id, email, kind, user_id, name in rows.iterator(chunk_size=5000):
        found.setdefault(group_id, {})[email] = (pk, (kind, user_id, name))
    return found


def _members_from(snap: GroupSnapshot) -> dict[str, MemberRow]:
    members = {e.strip().lower(): (MirrorMember.Kind.INVITE, "", "") for e in snap.invites}
    for user in snap.users:
        members[user.email.strip().lower()] = (MirrorMember.Kind.USER, user.id, user.name)
    return members


def _store_group(old: MirrorGroup | None, snap: GroupSnapshot, run: SyncRun) -> MirrorGroup:
    group = old or MirrorGroup(group_id=snap.group.id)
    group.name = snap.group.name[:200]
    group.name_key = snap.group.name.casefold()[:200]
    group.user_count = len(snap.users)
    group.invite_count = len(snap.invites)
    group.member_count = snap.group.member_count  # as Segment reports it
    group.permissions = permission_records(snap.group.permissions)
    group.read_at = snap.read_at
    group.sync = run
    group.save()
    return group


def _store_members(
    group: MirrorGroup, before: dict[str, tuple[int, MemberRow]], after: dict[str, MemberRow]
) -> None:
    gone = [pk for email, (pk, _) in before.items() if email not in after]
    if gone:
        MirrorMember.objects.filter(pk__in=gone).delete()
    changed = [
        MirrorMember(
            pk=before[email][0], kind=row[0], user_id=row[1], name=row[2], name_key=row[2].casefold()
        )
        for email, row in after.items()
        if email in before and before[email][1] != row
    ]
    if changed:
        MirrorMember.objects.bulk_update(changed, ["kind", "user_id", "name", "name_key"], batch_size=1000)
    MirrorMember.objects.bulk_create(
        (
            MirrorMember(
                group=group,
                email=email,
                kind=row[0],
                user_id=row[1],
                name=row[2][:200],
                name_key=row[2].casefold()[:200],
            )
            for email, row in after.items()
            if email not in before
        ),
        batch_size=1000,
    )


def _tell_administrators(observed: list[AuditEntry]) -> None:
    if observed:
        notify_observed_changes(observed)
