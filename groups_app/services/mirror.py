"""The workspace mirror: a local copy of every group, member, invite, permission and role.

The Public API reads one group at a time and has no search, so the pages that look across
groups (the list, People, drift) read this copy instead; the worker keeps it fresh:

- `sync_workspace()` reads everything, with the largest page size the API accepts, as many
  listings side by side as `MIRROR_SYNC_CONCURRENCY` and the shared read budget allow;
- `refresh_group()` re-reads one group, after every change made through Group Admin.

Both read first and write after, in one transaction: a reader sees the mirror before or
after a sync, never half of one, and a sync that dies leaves the mirror as it was (its run
is marked abandoned once its heartbeat is stale, and the next one starts over). Writing, they
compare what they read with what the mirror held: a difference that none of Group Admin's
own audit entries explains was made outside it, and becomes an "observed" audit entry.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from groups_app.models import AuditEntry, MirrorGroup, MirrorMember, MirrorRole, SyncRun
from groups_app.segment import (
    IamRole,
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
from groups_app.services.audit import describe_error
from groups_app.services.grants import describe, permissions_fingerprint
from groups_app.services.segment_client import get_client

if TYPE_CHECKING:
    from groups_app.services.groups import Membership

logger = logging.getLogger("groups_app.mirror")

T = TypeVar("T")

FALLBACK_PAGE_SIZE = 200
PAGE_SIZE_KEY = "mirror:page-size:v1"
PAGE_SIZE_MEMORY = 24 * 3600
HEARTBEAT_SECONDS = 5.0
GROUP_REFRESH_STALE_SECONDS = 120
OBSERVED_ACTOR = "outside Group Admin"
Action = AuditEntry.Action
# Audit entries of these outcomes changed nothing, so they explain no difference.
NOT_APPLIED = (AuditEntry.Status.FAILED, AuditEntry.Status.REFUSED)


# A requested sync that no worker started within this many seconds may be requested again.
SYNC_REQUEST_SECONDS = 300


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


@dataclass
class GroupSnapshot:
    """One group as read from Segment, with every user and invite."""

    group: UserGroup
    users: tuple[WorkspaceUser, ...]
    invites: tuple[str, ...]
    read_at: datetime


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
    from groups_app import tasks

    now = timezone.now()
    with transaction.atomic():
        if _pending_requests().select_for_update().exists():
            return False
        SyncRun.objects.create(
            kind=SyncRun.Kind.FULL,
            status=SyncRun.Status.REQUESTED,
            trigger=trigger[:200],
            started_at=now,
            heartbeat_at=now,
        )
        tasks.sync_workspace.enqueue(trigger=trigger[:200])
    return True


def _pending_requests():
    since = timezone.now() - timedelta(seconds=SYNC_REQUEST_SECONDS)
    return SyncRun.objects.filter(
        kind=SyncRun.Kind.FULL, status=SyncRun.Status.REQUESTED, started_at__gte=since
    )


def request_group_refresh(group_id: str, *, trigger: str, verify_emails: Iterable[str] = ()) -> None:
    """Enqueue a refresh of one group. A queue that cannot be reached costs only freshness (the
    next full sync catches up): it never fails the change that asked for it."""
    from groups_app import tasks

    try:
        with transaction.atomic():  # a savepoint: a failed enqueue leaves the caller's transaction usable
            tasks.refresh_group.enqueue(group_id, trigger=trigger[:200], verify_emails=list(verify_emails))
    except Exception:
        logger.exception("Could not enqueue a refresh of group %s", group_id)


# --- writing -------------------------------------------------------------------------------


@dataclass
class Difference:
    """What changed in one group between the mirror and Segment, not explained by Group Admin."""

    group_id: str
    group_name: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    permissions_before: list[dict] | None = None
    permissions_after: list[dict] | None = None
    old_name: str = ""
    new_name: str = ""
    created: bool = False
    deleted: bool = False
    previous_read_at: datetime | None = None
    read_at: datetime | None = None

    def __bool__(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.permissions_after is not None
            or self.old_name
            or self.created
            or self.deleted
        )

    @property
    def summary(self) -> str:
        parts = []
        if self.created:
            parts.append("group created")
        if self.deleted:
            parts.append("group deleted")
        if self.old_name:
            parts.append(f"renamed from {self.old_name}")
        if self.added:
            parts.append(f"added {', '.join(self.added[:3])}{' …' if len(self.added) > 3 else ''}")
        if self.removed:
            parts.append(f"removed {', '.join(self.removed[:3])}{' …' if len(self.removed) > 3 else ''}")
        if self.permissions_after is not None:
            parts.append("permissions changed")
        return f"Observed outside Group Admin in {self.group_name}: {'; '.join(parts)}"


def permission_records(permissions: Iterable[Permission]) -> list[dict[str, Any]]:
    """Permissions as stored in the mirror: the wire payload, role name and unknown fields kept."""
    return [{**p.to_payload(), "roleName": p.role_name} for p in permissions]


def stored_permissions(group: MirrorGroup) -> tuple[Permission, ...]:
    return tuple(Permission.from_payload(record) for record in group.permissions or ())


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
            differences.append(_difference(old, snap, before, after, role_map))
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
                    previous_read_at=old.read_at,
                    read_at=now,
                    permissions_before=[describe(p, role_map) for p in stored_permissions(old)],
                )
            )
        old.delete()
    observed = _record_unexplained(run, [d for d in differences if d])
    run.group_count, run.member_count = len(snapshots), member_total
    run.observed_count = len(observed)
    return observed


def _earlier_full_sync(run: SyncRun) -> bool:
    return (
        SyncRun.objects.filter(kind=SyncRun.Kind.FULL, status=SyncRun.Status.SUCCEEDED)
        .exclude(pk=run.pk)
        .exists()
    )


MemberRow = tuple[str, str, str]  # kind, user id, name


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


def _difference(
    old: MirrorGroup | None,
    snap: GroupSnapshot,
    before: dict[str, tuple[int, MemberRow]],
    after: dict[str, MemberRow],
    roles: dict[str, IamRole],
) -> Difference:
    """Everything that differs between the mirror's group and what Segment returned now.

    An invite that became a user is the same member: accepting an invite is no change of access.
    """
    difference = Difference(snap.group.id, snap.group.name, read_at=snap.read_at)
    if old is None:
        difference.created = True
        difference.added = sorted(after)
        if snap.group.permissions:
            difference.permissions_before = []
            difference.permissions_after = [describe(p, roles) for p in snap.group.permissions]
        return difference
    difference.previous_read_at = old.read_at
    difference.added = sorted(set(after) - set(before))
    difference.removed = sorted(set(before) - set(after))
    if old.name != snap.group.name:
        difference.old_name, difference.new_name = old.name, snap.group.name
    previous = stored_permissions(old)
    if permissions_fingerprint(previous) != permissions_fingerprint(snap.group.permissions):
        difference.permissions_before = [describe(p, roles) for p in previous]
        difference.permissions_after = [describe(p, roles) for p in snap.group.permissions]
    return difference


def _explanations(group_id: str, since: datetime | None) -> list[AuditEntry]:
    """Group Admin's own entries that may have changed this group since the earlier reading.

    The window starts before that reading by the time a change may take to apply (an entry is
    written before its call is sent, and Segment may apply it after the reading).
    """
    entries = AuditEntry.objects.filter(group_id=group_id).exclude(status__in=NOT_APPLIED)
    entries = entries.exclude(action=Action.OBSERVED).exclude(resolution=AuditEntry.Resolution.NOT_APPLIED)
    if since is not None:
        margin = max(60.0, 3 * settings.SEGMENT_REQUEST_DEADLINE)
        entries = entries.filter(created_at__gte=since - timedelta(seconds=margin))
    return list(entries.only("action", "details", "status", "resolution"))


ADDING_FIELDS = {
    Action.MEMBERS_ADD: ("emails", "added_users", "invited", "applied_emails"),
    Action.MEMBERS_REPLACE: ("to_add", "emails"),
}
REMOVING_FIELDS = {
    Action.MEMBERS_REMOVE: ("emails", "applied_emails"),
    Action.MEMBERS_REPLACE: ("to_remove",),
}
PERMISSION_ACTIONS = {Action.PERMISSIONS_ADD, Action.PERMISSIONS_REPLACE}


def _emails_in(entries: list[AuditEntry], fields_by_action: dict[str, tuple[str, ...]]) -> set[str]:
    emails: set[str] = set()
    for entry in entries:
        for name in fields_by_action.get(entry.action, ()):
            value = (entry.details or {}).get(name) or ()
            emails.update(str(e).lower() for e in value if isinstance(value, list))
    return emails


def _unexplained(difference: Difference) -> Difference:
    entries = _explanations(difference.group_id, difference.previous_read_at)
    actions = {entry.action for entry in entries}
    if (difference.created and Action.GROUP_CREATE in actions) or (
        difference.deleted and Action.GROUP_DELETE in actions
    ):
        return Difference(difference.group_id, difference.group_name)
    if difference.created:
        return difference
    rest = Difference(
        difference.group_id,
        difference.group_name,
        previous_read_at=difference.previous_read_at,
        read_at=difference.read_at,
        deleted=difference.deleted,
        permissions_before=difference.permissions_before if difference.deleted else None,
    )
    if difference.deleted:
        return rest
    added_here = _emails_in(entries, ADDING_FIELDS)
    removed_here = _emails_in(entries, REMOVING_FIELDS)
    rest.added = [e for e in difference.added if e not in added_here]
    rest.removed = [e for e in difference.removed if e not in removed_here]
    if difference.old_name and Action.GROUP_RENAME not in actions:
        rest.old_name, rest.new_name = difference.old_name, difference.new_name
    if difference.permissions_after is not None and not actions & PERMISSION_ACTIONS:
        rest.permissions_before = difference.permissions_before
        rest.permissions_after = difference.permissions_after
    return rest


def _record_unexplained(run: SyncRun, differences: list[Difference]) -> list[AuditEntry]:
    """One "observed" audit entry per group whose difference Group Admin does not explain."""
    observed = []
    for difference in differences:
        rest = _unexplained(difference)
        if not rest:
            continue
        details = {
            "added": rest.added,
            "removed": rest.removed,
            "old_name": rest.old_name,
            "new_name": rest.new_name,
            "group_created": rest.created,
            "group_deleted": rest.deleted,
            "permissions_before": rest.permissions_before,
            "permissions_after": rest.permissions_after,
            "previous_reading": rest.previous_read_at.isoformat() if rest.previous_read_at else "",
            "reading": (rest.read_at or run.started_at).isoformat(),
            "sync": run.pk,
        }
        entry = AuditEntry.objects.create(
            actor_username=OBSERVED_ACTOR,
            action=Action.OBSERVED,
            group_id=rest.group_id,
            group_name=rest.group_name[:200],
            summary=rest.summary[:500],
            details={k: v for k, v in details.items() if v not in (None, "", [], False)},
        )
        # Complete at the instant it was written (created_at is stamped on insert, so a
        # completed_at passed to create() would come before it).
        entry.status, entry.completed_at = AuditEntry.Status.SUCCEEDED, entry.created_at
        AuditEntry.objects.complete(entry.pk, status=entry.status, completed_at=entry.completed_at)
        observed.append(entry)
    return observed


def _tell_administrators(observed: list[AuditEntry]) -> None:
    if observed:
        from groups_app.services.notifications import notify_observed_changes

        notify_observed_changes(observed)


# --- reading the mirror ----------------------------------------------------------------------


@dataclass(frozen=True)
class Freshness:
    """How fresh the mirror is, for the "as of" line of the pages that read it."""

    as_of: datetime | None
    running: bool
    last_failed: SyncRun | None
    requested: bool = False

    @property
    def is_updating(self) -> bool:
        return self.running or self.requested

    @property
    def is_empty(self) -> bool:
        return self.as_of is None


def mirror_freshness() -> Freshness:
    """As of the start of the last successful full sync (the time Segment was read)."""
    last = SyncRun.objects.filter(kind=SyncRun.Kind.FULL, status=SyncRun.Status.SUCCEEDED).first()
    running = SyncRun.objects.filter(kind=SyncRun.Kind.FULL, status=SyncRun.Status.RUNNING).exists()
    latest = (
        SyncRun.objects.filter(kind=SyncRun.Kind.FULL)
        .exclude(status__in=[SyncRun.Status.RUNNING, SyncRun.Status.REQUESTED])
        .first()
    )
    failed = latest if latest is not None and latest.status != SyncRun.Status.SUCCEEDED else None
    return Freshness(
        as_of=last.started_at if last else None,
        running=running,
        last_failed=failed,
        requested=_pending_requests().exists(),
    )


def mirrored_roles() -> dict[str, IamRole]:
    return {r.role_id: IamRole(r.role_id, r.name, r.description) for r in MirrorRole.objects.all()}


def mirrored_group(group: MirrorGroup) -> UserGroup:
    """A mirrored group as the client's dataclass, permissions exactly as read."""
    return UserGroup(
        id=group.group_id,
        name=group.name,
        member_count=group.member_count,
        permissions=stored_permissions(group),
    )


def mirrored_membership(group_id: str, *, among: Iterable[str] | None = None) -> Membership | None:
    """A group's users and invites as the mirror holds them, or only those `among` some emails
    (an indexed lookup, however large the group); None when the mirror holds no such group."""
    from groups_app.services.groups import Membership

    if not MirrorGroup.objects.filter(group_id=group_id).exists():
        return None
    members = MirrorMember.objects.filter(group_id=group_id)
    if among is not None:
        members = members.filter(email__in=[e.lower() for e in among])
    users, invites = [], []
    for email, kind, user_id, name in members.values_list("email", "kind", "user_id", "name"):
        if kind == MirrorMember.Kind.USER:
            users.append(WorkspaceUser(id=user_id, name=name, email=email))
        else:
            invites.append(email)
    return Membership(users=tuple(users), invites=tuple(invites))


def known_workspace_users(emails: Iterable[str]) -> set[str]:
    """Which of these emails the mirror has seen as workspace users (in any group)."""
    emails = [e.lower() for e in emails]
    found = MirrorMember.objects.filter(email__in=emails, kind=MirrorMember.Kind.USER)
    return set(found.values_list("email", flat=True))


def note_members_added(group_id: str, *, users: Iterable[str], invites: Iterable[str]) -> None:
    """Write a confirmed addition through to a mirrored group at once (the refresh the change
    enqueued then reads the truth: names, and whether each email is a user or an invite)."""
    if not MirrorGroup.objects.filter(group_id=group_id).exists():
        return
    rows = [(e, MirrorMember.Kind.USER) for e in users] + [(e, MirrorMember.Kind.INVITE) for e in invites]
    MirrorMember.objects.bulk_create(
        [MirrorMember(group_id=group_id, email=email.lower(), kind=kind) for email, kind in rows],
        ignore_conflicts=True,
    )


def note_members_removed(group_id: str, emails: Iterable[str]) -> None:
    """Write a confirmed removal through to the mirror at once."""
    MirrorMember.objects.filter(group_id=group_id, email__in=[e.lower() for e in emails]).delete()
