"""Reading Segment into the mirror.

- `sync_workspace()` reads everything, with the largest page size the API accepts, as many
  listings side by side as `MIRROR_SYNC_CONCURRENCY` and the shared read budget allow;
- `sync_changed()` is the quick pass the worker runs every few minutes: the group listing,
  then the members of only the groups whose listing changed (member count, name, permissions),
  plus a share of the groups read longest ago, so that each group is read whole at least once
  every `MIRROR_FULL_SYNC_EVERY`, spread evenly (a swap keeps the count; only that shows it);
- `refresh_group()` re-reads one group, after a change made through Group Admin that Segment's
  answer does not prove the mirror right about.

They stream: each group is compared and written, in its own transaction, as soon as its
members are read, so memory follows `MIRROR_SYNC_CONCURRENCY`, not the workspace's size. A
reader sees each group before or after a sync, never half of it; a sync that dies leaves the
groups it had not written as they were (its run is marked abandoned once its heartbeat is
stale, and the next one reads them). Writing, they compare what they read with what the
mirror held (`drift`).
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from groups_app.models import (
    AuditEntry,
    MirrorGroup,
    MirrorMember,
    MirrorPerson,
    MirrorResource,
    MirrorRole,
    SyncRun,
)
from groups_app.segment import (
    RESOURCE_TYPES,
    IamRole,
    NamedResource,
    NotFound,
    Page,
    Permission,
    SegmentClient,
    SegmentError,
    UserGroup,
    ValidationFailed,
    WorkspaceUser,
    iterate_pages,
)
from groups_app.segment.client import FUNCTION_TYPES
from groups_app.services import queue
from groups_app.services.audit import describe_error
from groups_app.services.grants import describe, permissions_fingerprint
from groups_app.services.mirror.drift import (
    Difference,
    GroupSnapshot,
    MemberRow,
    difference_between,
    record_unexplained,
)
from groups_app.services.mirror.people import people_rebuild, people_recount
from groups_app.services.mirror.selectors import (
    mirrored_resource_names,
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
# A quick pass looks for the names of roles or resources it cannot name once in this long.
NAMES_RETRY_SECONDS = 3600
ROLES_MISSING_KEY = "mirror:unnamed-roles:v1"
RESOURCES_MISSING_KEY = "mirror:unnamed-resources:v1"
# Planner statistics are refreshed (PostgreSQL) after a sync that wrote at least this many groups.
ANALYZE_AFTER_GROUPS = 500


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
    # A refresh or a quick pass beats every few seconds: one silent for two minutes is dead,
    # and must not hold back the next ones for as long as a full sync would.
    silence = settings.MIRROR_SYNC_STALE_SECONDS
    if kind in (SyncRun.Kind.GROUP, SyncRun.Kind.QUICK):
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
        groups_read=run.groups_read,
        rotated_count=run.rotated_count,
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
    writer = _Writer(run, baseline=not _earlier_full_sync(run))
    return _run(run, reader, writer, lambda: _sync_all(run, client, reader, writer))


def sync_changed(
    *, trigger: str = "schedule", client: SegmentClient | None = None, budget: ReadBudget | None = None
) -> SyncRun | None:
    """A quick pass: read the group listing, and the members of the groups it shows changed
    (member count, name or permissions) plus a share of the groups read longest ago, so that
    every group is read whole at least every MIRROR_FULL_SYNC_EVERY. Until a full sync has
    made the baseline, runs one. Returns None when a sync is running already."""
    if not _earlier_full_sync(None):
        return sync_workspace(
            trigger=f"{trigger} (the first sync reads everything)", client=client, budget=budget
        )
    if _running(SyncRun.Kind.FULL):
        logger.info("A full sync is running; no quick pass beside it")
        return None
    run = _claim(SyncRun.Kind.QUICK, "", trigger)
    if run is None:
        logger.info("A quick pass is already running; not starting another")
        return None
    SyncRun.objects.filter(kind=SyncRun.Kind.FULL, status=SyncRun.Status.REQUESTED).delete()  # answered
    client = client or get_client()
    reader = Reader(client, budget or ReadBudget())
    writer = _Writer(run, baseline=False)
    return _run(run, reader, writer, lambda: _sync_quick(run, client, reader, writer))


def _run(run: SyncRun, reader: Reader, writer: _Writer, body: Callable[[], None]) -> SyncRun:
    """Run a sync's body, recording its outcome on the run and telling administrators what it
    observed. Each group is written whole as it is read (see the module's docstring)."""
    try:
        try:
            body()
        finally:
            run.groups_read, run.member_count = writer.written, writer.member_total
            run.observed_count = len(writer.observed)
    except (SegmentError, SyncAbandoned) as exc:
        logger.warning("The %s sync #%s failed: %s", run.kind, run.pk, exc)
        _finish(run, SyncRun.Status.FAILED, reader, [describe_error(exc)])
    except BaseException as exc:
        logger.exception("The %s sync #%s crashed", run.kind, run.pk)
        _finish(run, SyncRun.Status.FAILED, reader, [describe_error(exc)])
        raise
    else:
        _finish(run, SyncRun.Status.SUCCEEDED, reader)
    # What was written before a failure stays written, so what it observed is told too.
    _tell_administrators(writer.observed)
    return run


def _sync_all(run: SyncRun, client: SegmentClient, reader: Reader, writer: _Writer) -> None:
    _store_roles(reader.all_pages(client.list_roles))
    writer.role_map = mirrored_roles()
    _store_resource_names(client, reader)
    groups = reader.all_pages(client.list_user_groups)
    run.group_count = len(groups)
    _remember_unnamed(groups, writer.role_map)
    _read_and_write(run, reader, groups, writer, concurrent=client.concurrent_requests)
    _heartbeat(run)
    writer.remove_gone(listed={g.id for g in groups})
    if writer.baseline:
        people_rebuild()  # the first sync: one statement, not a recount per group
    _analyze_after(writer.written)


def _sync_quick(run: SyncRun, client: SegmentClient, reader: Reader, writer: _Writer) -> None:
    groups = reader.all_pages(client.list_user_groups)
    run.group_count = len(groups)
    mirrored = {
        row["group_id"]: row
        for row in MirrorGroup.objects.values("group_id", "name", "member_count", "permissions")
    }
    changed = [g for g in groups if _listing_differs(g, mirrored.get(g.id))]
    _read_new_names(client, reader, writer, changed)
    changed_ids = {g.id for g in changed}
    by_id = {g.id: g for g in groups}
    rotation = [
        by_id[group_id]
        for group_id in (
            MirrorGroup.objects.exclude(group_id__in=changed_ids)
            .order_by("read_at", "group_id")
            .values_list("group_id", flat=True)[: rotation_share(len(groups))]
        )
        if group_id in by_id
    ]
    run.rotated_count = len(rotation)
    _read_and_write(run, reader, [*changed, *rotation], writer, concurrent=client.concurrent_requests)
    _heartbeat(run)
    writer.remove_gone(listed=set(by_id))
    _analyze_after(writer.written)


def _read_new_names(client: SegmentClient, reader: Reader, writer: _Writer, changed: list[UserGroup]) -> None:
    """Read the roles, or the resource names, when a changed group grants one the mirror cannot
    name (created since). A name still unknown after that (a deleted resource still granted, a
    type the token may not list) is not looked for again for NAMES_RETRY_SECONDS."""
    permissions = [p for g in changed for p in g.permissions]
    unnamed_roles = {p.role_id for p in permissions} - writer.role_map.keys() - _missing(ROLES_MISSING_KEY)
    if unnamed_roles:
        _store_roles(reader.all_pages(client.list_roles))
        writer.role_map = mirrored_roles()
        _remember_missing(ROLES_MISSING_KEY, unnamed_roles - writer.role_map.keys())
    granted = {(r.type, r.id) for p in permissions for r in p.resources}
    unnamed = granted - mirrored_resource_names().keys() - _missing(RESOURCES_MISSING_KEY)
    if unnamed:
        _store_resource_names(client, reader)
        _remember_missing(RESOURCES_MISSING_KEY, unnamed - mirrored_resource_names().keys())


def _remember_unnamed(groups: tuple[UserGroup, ...], roles: dict[str, IamRole]) -> None:
    """After a full sync: what no listing names is not looked for by the quick passes."""
    permissions = [p for g in groups for p in g.permissions]
    cache.set(ROLES_MISSING_KEY, {p.role_id for p in permissions} - roles.keys(), timeout=NAMES_RETRY_SECONDS)
    granted = {(r.type, r.id) for p in permissions for r in p.resources}
    cache.set(RESOURCES_MISSING_KEY, granted - mirrored_resource_names().keys(), timeout=NAMES_RETRY_SECONDS)


def _missing(key: str) -> set:
    return set(cache.get(key) or ())


def _remember_missing(key: str, unnamed: set) -> None:
    cache.set(key, _missing(key) | unnamed, timeout=NAMES_RETRY_SECONDS)


def rotation_share(group_count: int) -> int:
    """How many of the groups read longest ago each quick pass re-reads whole: enough that the
    passes of one MIRROR_FULL_SYNC_EVERY read every group once, spread evenly over it (a swap of
    one member for another keeps the member count, and only a whole reading shows it)."""
    if group_count <= 0:
        return 0
    quick = max(1, settings.MIRROR_QUICK_SYNC_EVERY)
    full = max(quick, settings.MIRROR_FULL_SYNC_EVERY)
    return math.ceil(group_count * quick / full)


def _listing_differs(group: UserGroup, mirrored: dict[str, Any] | None) -> bool:
    """Whether the listing shows a change the mirror does not hold (new, renamed, count, grants)."""
    if mirrored is None:
        return True
    if mirrored["name"] != group.name[:200] or mirrored["member_count"] != group.member_count:
        return True
    held = (Permission.from_payload(record) for record in mirrored["permissions"] or ())
    return permissions_fingerprint(held) != permissions_fingerprint(group.permissions)


def _running(kind: str) -> bool:
    alive = timezone.now() - timedelta(seconds=settings.MIRROR_SYNC_STALE_SECONDS)
    return SyncRun.objects.filter(kind=kind, status=SyncRun.Status.RUNNING, heartbeat_at__gte=alive).exists()


def _snapshots(
    run: SyncRun, reader: Reader, groups: Iterable[UserGroup], *, concurrent: bool
) -> Iterator[GroupSnapshot]:
    """Each group's members as soon as they are read, side by side when the client allows, with
    a bounded number in flight (memory follows the concurrency, not the workspace)."""
    last_beat = time.monotonic()

    def beat() -> None:
        nonlocal last_beat
        if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
            _heartbeat(run)
            last_beat = time.monotonic()

    width = settings.MIRROR_SYNC_CONCURRENCY
    if not concurrent or width <= 1:
        for group in groups:
            yield reader.snapshot(group, trust_member_count=True)
            beat()
        return
    waiting = iter(groups)
    with ThreadPoolExecutor(width, thread_name_prefix="mirror-read") as pool:
        pending: set[Future[GroupSnapshot]] = set()

        def submit(count: int) -> None:
            for group in itertools.islice(waiting, count):
                context = contextvars.copy_context()
                pending.add(pool.submit(context.run, reader.snapshot, group, trust_member_count=True))

        submit(width * 2)
        try:
            while pending:
                done, pending = wait(pending, timeout=HEARTBEAT_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                submit(len(done))
                beat()
        finally:
            for future in pending:
                future.cancel()


def _read_and_write(
    run: SyncRun, reader: Reader, groups: Iterable[UserGroup], writer: _Writer, *, concurrent: bool
) -> None:
    for snapshot in _snapshots(run, reader, groups, concurrent=concurrent):
        writer.write(snapshot)


class _Writer:
    """Writes a sync's readings group by group, each in its own transaction, and keeps what
    they observed. `baseline`: nothing to compare with yet (the first full sync)."""

    def __init__(self, run: SyncRun, *, baseline: bool) -> None:
        self.run = run
        self.baseline = baseline
        self.role_map = mirrored_roles()
        self.observed: list[AuditEntry] = []
        self.written = 0
        self.member_total = 0

    def write(self, snapshot: GroupSnapshot) -> None:
        with transaction.atomic():
            observed, members = _apply_group(self.run, snapshot, baseline=self.baseline, roles=self.role_map)
        self.observed.extend(observed)
        self.written += 1
        self.member_total += members

    def remove_gone(self, *, listed: set[str]) -> None:
        """Forget the mirrored groups a complete listing no longer shows (unless read after this
        run began: created since)."""
        gone = (
            MirrorGroup.objects.filter(read_at__lt=self.run.started_at)
            .exclude(group_id__in=listed)
            .values_list("group_id", flat=True)
        )
        for group_id in list(gone):
            with transaction.atomic():
                self.observed.extend(
                    _apply_gone(self.run, group_id, baseline=self.baseline, roles=self.role_map)
                )


def _analyze_after(groups_written: int) -> None:
    """Fresh planner statistics after a large write (PostgreSQL), so People and search keep
    their indexes instead of guessing from the sizes of an empty mirror."""
    if groups_written < ANALYZE_AFTER_GROUPS or connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in (MirrorGroup, MirrorMember, MirrorPerson):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


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
    writer = _Writer(run, baseline=not _earlier_full_sync(run))

    def body() -> None:
        try:
            group = reader.call(lambda: client.get_user_group(group_id))
        except NotFound:
            with transaction.atomic():
                writer.observed.extend(
                    _apply_gone(run, group_id, baseline=writer.baseline, roles=writer.role_map)
                )
            return
        run.group_count = 1
        writer.write(reader.snapshot(group, trust_member_count=False))

    return _run(run, reader, writer, body)


def request_sync(*, trigger: str) -> bool:
    """Enqueue a quick pass for the worker (a full sync while the mirror has no baseline);
    False when one was requested and has not started yet.

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
        queue.enqueue("sync_changed", trigger=trigger[:200])
    return True


def _store_resource_names(client: SegmentClient, reader: Reader) -> None:
    """The names of every resource a permission can name, type by type; a type whose listing
    fails (a token without that scope) keeps the names read before, and the run notes it."""
    for resource_type in RESOURCE_TYPES:
        try:
            found = _resources_of(client, reader, resource_type)
        except SegmentError as exc:
            reader.notes.append(f"The {resource_type.lower()} names could not be read: {exc.message}")
            continue
        with transaction.atomic():
            MirrorResource.objects.filter(resource_type=resource_type).delete()
            MirrorResource.objects.bulk_create(
                (
                    MirrorResource(resource_type=resource_type, resource_id=r.id[:128], name=r.name[:200])
                    for r in found
                ),
                batch_size=1000,
                ignore_conflicts=True,
            )


def _resources_of(client: SegmentClient, reader: Reader, resource_type: str) -> tuple[NamedResource, ...]:
    if resource_type == "WORKSPACE":
        return (reader.call(client.get_workspace),)
    found: list[NamedResource] = []
    for kind in FUNCTION_TYPES if resource_type == "FUNCTION" else ("SOURCE",):

        def page(kind: str = kind, **paging: Any) -> Page[NamedResource]:
            return client.list_resources(resource_type, function_type=kind, **paging)

        found.extend(reader.all_pages(page))
    return tuple(found)


def _store_roles(roles: tuple[IamRole, ...]) -> None:
    with transaction.atomic():
        MirrorRole.objects.all().delete()
        MirrorRole.objects.bulk_create(
            MirrorRole(role_id=r.id, name=r.name, description=r.description) for r in roles
        )


def _apply_group(
    run: SyncRun, snap: GroupSnapshot, *, baseline: bool, roles: dict[str, IamRole]
) -> tuple[list[AuditEntry], int]:
    """Write one group's reading, in the caller's transaction; return the observed-change
    entries and its member count. A group refreshed after this reading keeps the newer one."""
    old = MirrorGroup.objects.select_for_update().filter(group_id=snap.group.id).first()
    if old is not None and old.read_at > snap.read_at:
        return [], old.member_count
    before = _members_of([snap.group.id]).get(snap.group.id, {})
    after = _members_from(snap)
    difference = None if baseline else difference_between(old, snap, before, after, roles)
    group = _store_group(old, snap, run)
    touched = _store_members(group, before, after)
    if not baseline:  # the first sync rebuilds every person's summary at its end instead
        people_recount(touched)
    return (record_unexplained(run, [difference]) if difference else []), len(after)


def _apply_gone(
    run: SyncRun, group_id: str, *, baseline: bool, roles: dict[str, IamRole]
) -> list[AuditEntry]:
    """Forget a group Segment no longer has, in the caller's transaction; observed unless baseline."""
    old = MirrorGroup.objects.select_for_update().filter(group_id=group_id).first()
    if old is None:
        return []
    observed = []
    if not baseline:
        difference = Difference(
            group_id,
            old.name,
            deleted=True,
            # Who was in it, so that Undo can re-create the group with its members.
            removed=sorted(MirrorMember.objects.filter(group_id=group_id).values_list("email", flat=True)),
            previous_read_at=old.read_at,
            read_at=timezone.now(),
            permissions_before=[describe(p, roles) for p in stored_permissions(old)],
        )
        observed = record_unexplained(run, [difference])
    emails = list(MirrorMember.objects.filter(group_id=group_id).values_list("email", flat=True))
    old.delete()
    people_recount(emails)
    return observed


def _earlier_full_sync(run: SyncRun | None) -> bool:
    done = SyncRun.objects.filter(kind=SyncRun.Kind.FULL, status=SyncRun.Status.SUCCEEDED)
    if run is not None:
        done = done.exclude(pk=run.pk)
    return done.exists()


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
) -> set[str]:
    """Write the group's members as read; return the emails whose row was added, changed or
    removed (their summaries need recounting)."""
    gone_emails = [email for email in before if email not in after]
    gone = [before[email][0] for email in gone_emails]
    if gone:
        MirrorMember.objects.filter(pk__in=gone).delete()
    changed = [
        MirrorMember(
            pk=before[email][0],
            email=email,
            kind=row[0],
            user_id=row[1],
            name=row[2],
            name_key=row[2].casefold(),
        )
        for email, row in after.items()
        if email in before and before[email][1] != row
    ]
    new = [email for email in after if email not in before]
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
    return {*gone_emails, *(m.email for m in changed), *new}


def _tell_administrators(observed: list[AuditEntry]) -> None:
    if observed:
        notify_observed_changes(observed)
