"""Membership and invite reviews: snapshot a group, decide keep/remove, remove what was marked."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from groups_app.models import (
    AuditEntry,
    GroupOwner,
    InviteRecord,
    MirrorGroup,
    Review,
    ReviewCampaign,
    ReviewItem,
)
from groups_app.roles import RUN_REVIEWS
from groups_app.rules import book
from groups_app.segment import SegmentClient, SegmentError
from groups_app.services import queue
from groups_app.services.audit import SYSTEM, actor_name, audited
from groups_app.services.audit_details import details_for
from groups_app.services.errors import ChangeOutcomeUnknown, InvalidInput, NotAllowed, ServiceError
from groups_app.services.exports import csv_chunks
from groups_app.services.groups import group_membership
from groups_app.services.jobs import review_removals_start
from groups_app.services.membership import group_members_remove
from groups_app.services.mirror.selectors import mirrored_group, mirrored_membership
from groups_app.services.mirror.sync import refresh_group
from groups_app.services.notifications import notify_campaign_review, notify_review_due
from groups_app.services.owners import group_owners, owner_emails
from groups_app.services.segment_client import get_client
from groups_app.services.text import plural
from groups_app.services.workspace import group_is_privileged

REMOVAL_BATCH = 50


def require_reviewer(actor: Any, group_id: str = "") -> None:
    """Raises NotAllowed unless the actor's role runs reviews, or they own the group reviewed
    (views check and audit this first)."""
    if actor is None or not may_review(actor, group_id):
        raise NotAllowed("Your role does not allow running reviews.")


def may_review(actor: Any, group_id: str = "") -> bool:
    """Whether `actor` runs reviews (of this group): the rule book decides, owners included."""
    return book.may_act(actor, RUN_REVIEWS, group_id=group_id)


@dataclass(frozen=True)
class InviteAge:
    label: str
    is_stale: bool


@dataclass(frozen=True)
class ReviewStart:
    review: Review
    is_new: bool  # False: the group already had an open review, which is returned instead


def review_start(*, actor: Any, group_id: str, client: SegmentClient | None = None) -> ReviewStart:
    """Snapshot every user and invite of a group into a new open review; one open review per group
    (starting it again, or twice at once, opens the existing one).

    Raises:
        NotAllowed, NotFound, SegmentError.
    """
    require_reviewer(actor, group_id)
    existing = Review.objects.filter(group_id=group_id, status=Review.Status.OPEN).first()
    if existing is not None:
        return ReviewStart(existing, is_new=False)
    try:
        return ReviewStart(_snapshot(actor, group_id, client or get_client()), is_new=True)
    except IntegrityError:  # started by someone else a moment ago
        return ReviewStart(Review.objects.get(group_id=group_id, status=Review.Status.OPEN), is_new=False)


def _snapshot(actor: Any, group_id: str, client: SegmentClient) -> Review:
    """The review's entries come from a refresh of the group made now (which also brings the
    mirror up to date); read directly when that refresh could not run."""
    run = refresh_group(group_id, trigger=f"review started by {actor_name(actor)}", client=client)
    stored = MirrorGroup.objects.filter(group_id=group_id).first() if run and run.succeeded else None
    membership = mirrored_membership(group_id) if stored else None
    if stored is None or membership is None:
        group = client.get_user_group(group_id)
        membership = group_membership(group_id=group_id, client=client)
    else:
        group = mirrored_group(stored)
    snapshot = len(membership.users) + len(membership.invites)
    with (
        audited(
            actor=actor,
            action=AuditEntry.Action.REVIEW_START,
            summary=f"{actor_name(actor)} started a review of {group.name} ({plural(snapshot, 'entry', 'entries')})",
            group_id=group.id,
            group_name=group.name,
            details=details_for(
                AuditEntry.Action.REVIEW_START, expected_count=group.member_count, snapshot_count=snapshot
            ),
        ) as record,
        transaction.atomic(),
    ):
        review = Review.objects.create(
            group_id=group.id,
            group_name=group.name,
            started_by=actor,
            started_by_username=actor_name(actor),
            expected_count=group.member_count,
            snapshot_count=snapshot,
            **_default_reviewer(group.id),
        )
        items = {
            u.email.lower(): ReviewItem(review=review, email=u.email.lower(), name=u.name, user_id=u.id)
            for u in membership.users
        }
        for email in membership.invites:
            items.setdefault(email.lower(), ReviewItem(review=review, email=email.lower(), is_invite=True))
        ReviewItem.objects.bulk_create(items.values())
        record.review = review
    return review


def _default_reviewer(group_id: str) -> dict[str, Any]:
    """A group's first owner with an active account reviews it unless someone else is named."""
    for owner in group_owners(group_id):
        if owner.user is not None and owner.user.is_active:
            return {"reviewer": owner.user, "reviewer_username": owner.user.get_username()}
    return {}


def _open_review(review_id: int) -> Review:
    review = Review.objects.get(pk=review_id)
    if review.status != Review.Status.OPEN:
        raise InvalidInput("This review is completed; its decisions can no longer change.")
    return review


def review_decide(
    *,
    actor: Any,
    review_id: int,
    item_ids: list[int],
    decision: str,
    note: str | None = None,
    only_undecided: bool = False,
) -> list[ReviewItem]:
    """Mark entries of an open review keep or remove (or undecided again), with an optional note.

    With `only_undecided`, entries already decided keep their decision ("keep the rest").

    Raises:
        NotAllowed, InvalidInput.
    """
    review = _open_review(review_id)
    require_reviewer(actor, review.group_id)
    if decision not in ReviewItem.Decision.values:
        raise InvalidInput("Choose keep or remove.")
    items = review.items.filter(pk__in=item_ids)
    if only_undecided:
        items = items.filter(decision="")
    items = list(items)
    now = timezone.now()
    for item in items:
        item.decision = decision
        item.decided_by_username = actor_name(actor) if decision else ""
        item.decided_at = now if decision else None
        if note is not None:
            item.note = note.strip()[:500]
    ReviewItem.objects.bulk_update(items, ["decision", "decided_by_username", "decided_at", "note"])
    return items


def review_assign(*, actor: Any, review_id: int, reviewer: Any, due_date: date | None) -> Review:
    """Name who reviews, and by when (audited); the reviewer is reminded before the due date.

    Raises:
        NotAllowed, InvalidInput.
    """
    require_reviewer(actor)
    review = _open_review(review_id)
    if reviewer is not None and not may_review(reviewer, review.group_id):
        raise InvalidInput(
            "Reviewers run reviews: choose an Administrator or an owner of the group.",
            {"reviewer": "Choose an Administrator or an owner of the group."},
        )
    if due_date is not None and due_date < timezone.localdate():
        raise InvalidInput("The due date has passed.", {"due_date": "Choose a day from today on."})
    names = {"reviewer": actor_name(reviewer) if reviewer else "nobody", "due": str(due_date or "no date")}
    with audited(
        actor=actor,
        action=AuditEntry.Action.REVIEW_ASSIGN,
        summary=f"{actor_name(actor)} assigned the review of {review.group_name} to {names['reviewer']}, due {names['due']}",
        group_id=review.group_id,
        group_name=review.group_name,
        details=details_for(AuditEntry.Action.REVIEW_ASSIGN, **names),
        review=review,
    ):
        review.reviewer = reviewer
        review.reviewer_username = actor_name(reviewer) if reviewer else ""
        review.due_date = due_date
        review.reminded_at = None  # a new date deserves a new reminder
        review.save(update_fields=["reviewer", "reviewer_username", "due_date", "reminded_at"])
    return review


def reviews_remind(*, today: date | None = None) -> list[Review]:
    """Email the reviewer (else who started it) of each open review due within REVIEW_REMINDER_DAYS,
    once per due date. Safe to run repeatedly."""
    today = today or timezone.localdate()
    due = Review.objects.filter(
        status=Review.Status.OPEN,
        due_date__isnull=False,
        due_date__lte=today + timedelta(days=settings.REVIEW_REMINDER_DAYS),
        reminded_at__isnull=True,
    ).select_related("reviewer", "started_by")
    reminded = []
    for review in due:
        decided, total = review_progress(review)
        person = review.reviewer or review.started_by
        if person is not None and notify_review_due(review, person.email, decided=decided, total=total):
            Review.objects.filter(pk=review.pk).update(reminded_at=timezone.now())
            reminded.append(review)
    return reminded


def review_list(*, group_id: str = "") -> QuerySet[Review]:
    """Reviews, open ones first, with their progress counted in the same query."""
    reviews = Review.objects.annotate(
        item_count=Count("items"), decided_count=Count("items", filter=~Q(items__decision=""))
    ).order_by("-status", "-started_at")
    return reviews.filter(group_id=group_id) if group_id else reviews


def review_progress(review: Review) -> tuple[int, int]:
    """(decided, total) entries of a review."""
    total = review.items.count()
    return total - review.items.filter(decision="").count(), total


def invite_ages(
    review: Review, *, emails: list[str] | None = None, now: datetime | None = None
) -> dict[str, InviteAge]:
    """How old the review's invites (or just `emails`) are, from when Group Admin made them."""
    now = now or timezone.now()
    if emails is None:
        emails = list(review.items.filter(is_invite=True).values_list("email", flat=True))
    invited_at = dict(
        InviteRecord.objects.filter(group_id=review.group_id, email__in=emails).values_list(
            "email", "invited_at"
        )
    )
    ages = {}
    for email in emails:
        when = invited_at.get(email)
        if when is None:
            ages[email] = InviteAge("age unknown", False)
            continue
        days = (now - when).days
        is_stale = days > settings.STALE_INVITE_DAYS
        ages[email] = InviteAge(
            f"stale invite ({days} days)" if is_stale else f"invited {plural(days, 'day')} ago", is_stale
        )
    return ages


def review_complete(*, actor: Any, review_id: int, submission_key: str | None = None) -> Review:
    """Close a fully decided review and remove every entry marked remove, in batches: at once
    when one call does it, otherwise as a job in the worker (`review.removal_job`).

    Failed batches are marked per email and can be retried with review_retry_removals.

    Raises:
        NotAllowed, InvalidInput (undecided entries), DuplicateSubmission.
    """
    review = _open_review(review_id)
    require_reviewer(actor, review.group_id)
    decided, total = review_progress(review)
    if decided < total:
        raise InvalidInput(f"{total - decided} of {total} entries are still undecided.")
    removals = list(review.items.filter(decision=ReviewItem.Decision.REMOVE))
    with audited(
        actor=actor,
        action=AuditEntry.Action.REVIEW_COMPLETE,
        summary=(
            f"{actor_name(actor)} completed the review of {review.group_name}: "
            f"{total - len(removals)} kept, {len(removals)} to remove"
        ),
        group_id=review.group_id,
        group_name=review.group_name,
        details=details_for(
            AuditEntry.Action.REVIEW_COMPLETE,
            kept=total - len(removals),
            remove=[item.email for item in removals],
        ),
        submission_key=submission_key,
        review=review,
    ):
        fields = {
            "status": Review.Status.COMPLETED,
            "completed_at": timezone.now(),
            "completed_by_username": actor_name(actor),
        }
        # Only one of two simultaneous completions removes anyone.
        if not Review.objects.filter(pk=review.pk, status=Review.Status.OPEN).update(**fields):
            raise InvalidInput("This review was completed a moment ago by someone else.")
        for name, value in fields.items():
            setattr(review, name, value)
    if len(removals) > REMOVAL_BATCH:  # more than one call: the worker removes them, as a job
        emails = [item.email for item in removals]
        batches = [emails[start : start + REMOVAL_BATCH] for start in range(0, len(emails), REMOVAL_BATCH)]
        review.removal_job = review_removals_start(actor=actor, review=review, batches=batches)
        Review.objects.filter(pk=review.pk).update(removal_job=review.removal_job)
    else:
        _remove(actor, review, removals)
    return review


def review_retry_removals(*, actor: Any, review_id: int) -> Review:
    """Try again to remove the entries whose removal failed.

    Raises:
        NotAllowed.
    """
    review = Review.objects.get(pk=review_id)
    require_reviewer(actor, review.group_id)
    _remove(actor, review, list(review.items.filter(removal=ReviewItem.Removal.FAILED)))
    return review


def _remove(actor: Any, review: Review, items: list[ReviewItem]) -> None:
    """Remove items batch by batch through the remove-members service (each batch audited)."""
    for start in range(0, len(items), REMOVAL_BATCH):
        batch = items[start : start + REMOVAL_BATCH]
        try:
            group_members_remove(
                actor=actor, group_id=review.group_id, emails=[item.email for item in batch], review=review
            )
        except ChangeOutcomeUnknown as exc:
            _mark_from_read_back(batch, exc)
        except (SegmentError, ServiceError) as exc:
            failed_emails = set(getattr(exc, "remaining_emails", ()) or (item.email for item in batch))
            for item in batch:
                is_failed = item.email in failed_emails
                item.removal = ReviewItem.Removal.FAILED if is_failed else ReviewItem.Removal.REMOVED
                item.removal_error = exc.message if is_failed else ""
        else:
            for item in batch:
                item.removal, item.removal_error = ReviewItem.Removal.REMOVED, ""
        ReviewItem.objects.bulk_update(batch, ["removal", "removal_error"])


def _mark_from_read_back(batch: list[ReviewItem], exc: ChangeOutcomeUnknown) -> None:
    """A batch whose outcome Segment did not confirm: removed where reading back says so."""
    not_removed = set((exc.entry.evidence or {}).get("not_applied") or ())
    for item in batch:
        if exc.entry.resolution and item.email not in not_removed:
            item.removal, item.removal_error = ReviewItem.Removal.REMOVED, ""
        else:
            item.removal, item.removal_error = ReviewItem.Removal.FAILED, exc.message


def review_csv_rows(review: Review) -> Iterator[str]:
    """The review's entries as CSV text: entry, kind, decision, removal, reviewer, note, time."""
    rows = (
        (
            item.email,
            item.name,
            "invite" if item.is_invite else "user",
            {"keep": "kept", "remove": "removed"}.get(item.decision, "undecided"),
            item.get_removal_display() if item.removal else "",
            item.decided_by_username,
            item.note,
            item.decided_at.isoformat() if item.decided_at else "",
        )
        for item in review.items.iterator(chunk_size=2000)
    )
    header = ("email", "name", "kind", "decision", "removal", "reviewer", "note", "decided_at")
    return csv_chunks(header, rows)


# --- Review campaigns ------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignGroup:
    """One group of a campaign: its review (once opened) and how far it is."""

    group_id: str
    group_name: str
    review: Review | None
    decided: int = 0
    total: int = 0
    problem: str = ""
    is_overdue: bool = False

    @property
    def state(self) -> str:
        if self.problem:
            return "could not open"
        if self.review is None:
            return "opening"
        if self.review.status == Review.Status.COMPLETED:
            return "completed"
        return "overdue" if self.is_overdue else "open"


@dataclass(frozen=True)
class CampaignProgress:
    campaign: ReviewCampaign
    groups: tuple[CampaignGroup, ...]

    @property
    def completed(self) -> int:
        return sum(1 for g in self.groups if g.state == "completed")

    @property
    def overdue(self) -> int:
        return sum(1 for g in self.groups if g.is_overdue)

    @property
    def opening(self) -> int:
        return sum(1 for g in self.groups if g.state == "opening")

    @property
    def decided(self) -> int:
        return sum(g.decided for g in self.groups)

    @property
    def total(self) -> int:
        return sum(g.total for g in self.groups)


def campaign_groups(*, scope: str, group_ids: list[str] | None = None) -> list[MirrorGroup]:
    """The mirrored groups a campaign of this scope covers, by name.

    Raises:
        InvalidInput (field `groups`): chosen groups the mirror does not hold, or none at all.
    """
    groups = MirrorGroup.objects.order_by("name_key", "group_id")
    if scope == ReviewCampaign.Scope.CHOSEN:
        wanted = list(dict.fromkeys(group_ids or ()))
        found = list(groups.filter(group_id__in=wanted))
        if len(found) != len(wanted):
            raise InvalidInput("Some chosen groups are unknown.", {"groups": "Choose groups from the list."})
    elif scope == ReviewCampaign.Scope.PRIVILEGED:
        found = [g for g in groups if group_is_privileged(mirrored_group(g))]
    elif scope == ReviewCampaign.Scope.OWNED:
        found = list(groups.filter(group_id__in=GroupOwner.objects.values("group_id")))
    else:
        raise InvalidInput("Choose which groups.", {"scope": "Choose which groups."})
    if not found:
        raise InvalidInput("No group matches; nothing to review.", {"groups": "No group matches."})
    return found


def campaign_start(
    *,
    actor: Any,
    name: str,
    scope: str,
    due_date: date | None,
    group_ids: list[str] | None = None,
    reviewer: Any = None,
) -> ReviewCampaign:
    """Start a campaign: one review per group, opened by the worker (a progress page follows).

    Raises:
        NotAllowed (audited as refused), InvalidInput (fields `name`, `due_date`, `groups`, `reviewer`).
    """
    name = (name or "").strip()
    with audited(
        actor=actor,
        action=AuditEntry.Action.CAMPAIGN_START,
        summary=f"{actor_name(actor)} started the review campaign {name.replace(chr(0), '')[:100]}",
        details=details_for(
            AuditEntry.Action.CAMPAIGN_START,
            name=name[:200].replace("\x00", ""),
            scope=str(scope)[:20],
            due=str(due_date or ""),
            reviewer=actor_name(reviewer) if reviewer else "each group's owners",
        ),
    ) as record:
        require_reviewer(actor)
        errors = {}
        if not name or len(name) > 200 or "\x00" in name:
            errors["name"] = "Name the campaign (at most 200 characters)."
        if due_date is None or due_date <= timezone.localdate():
            errors["due_date"] = "Choose a due date after today."
        if reviewer is not None and not may_review(reviewer):
            errors["reviewer"] = "A named reviewer runs reviews: choose an Administrator."
        if errors:
            raise InvalidInput(" ".join(errors.values()), errors)
        groups = campaign_groups(scope=scope, group_ids=group_ids)
        campaign = ReviewCampaign.objects.create(
            name=name,
            scope=scope,
            group_ids=[g.group_id for g in groups],
            reviewer=reviewer,
            reviewer_username=actor_name(reviewer) if reviewer else "",
            due_date=due_date,
            started_by=actor if getattr(actor, "pk", None) else None,
            started_by_username=actor_name(actor),
        )
        record.details = details_for(AuditEntry.Action.CAMPAIGN_START, group_count=len(groups))
    queue.enqueue_after_commit("open_campaign_reviews", campaign.pk)
    return campaign


def campaign_open_reviews(*, campaign_id: int, client: SegmentClient | None = None) -> ReviewCampaign:
    """Open the review of each group of a campaign not opened yet (safe to repeat): reuse a group's
    open review, assign it (the named reviewer, else the group's first owner) and its due date,
    and tell its owners. A group whose review cannot open is recorded and the others go on."""
    campaign = ReviewCampaign.objects.get(pk=campaign_id)
    client = client or get_client()
    actor = campaign.started_by or SYSTEM
    done = set(campaign.reviews.values_list("group_id", flat=True))
    problems = dict(campaign.problems or {})
    for group_id in campaign.group_ids:
        if group_id in done:
            continue
        try:
            review = review_start(actor=actor, group_id=group_id, client=client).review
        except (SegmentError, ServiceError) as exc:
            problems[group_id] = getattr(exc, "message", str(exc))[:500]
            continue
        problems.pop(group_id, None)
        assigned = (
            {"reviewer": campaign.reviewer, "reviewer_username": campaign.reviewer_username}
            if campaign.reviewer
            else _default_reviewer(group_id)
        )
        Review.objects.filter(pk=review.pk).update(
            campaign=campaign, due_date=campaign.due_date, reminded_at=None, **assigned
        )
        notify_campaign_review(review, campaign, sorted({*owner_emails(group_id), *_emails(assigned)}))
    campaign.problems = problems
    campaign.status = ReviewCampaign.Status.OPEN
    campaign.save(update_fields=["problems", "status"])
    return campaign


def _emails(assigned: dict[str, Any]) -> list[str]:
    reviewer = assigned.get("reviewer")
    return [reviewer.email] if reviewer is not None and reviewer.email else []


def campaign_progress(campaign: ReviewCampaign, *, today: date | None = None) -> CampaignProgress:
    """Each group of a campaign with its review's progress, whether it is overdue, and why a
    review did not open."""
    today = today or timezone.localdate()
    reviews = {
        r.group_id: r
        for r in campaign.reviews.annotate(
            item_count=Count("items"), decided_count=Count("items", filter=~Q(items__decision=""))
        )
    }
    names = dict(MirrorGroup.objects.filter(group_id__in=campaign.group_ids).values_list("group_id", "name"))
    groups = []
    for group_id in campaign.group_ids:
        review = reviews.get(group_id)
        groups.append(
            CampaignGroup(
                group_id=group_id,
                group_name=review.group_name if review else names.get(group_id, group_id),
                review=review,
                decided=review.decided_count if review else 0,
                total=review.item_count if review else 0,
                problem=(campaign.problems or {}).get(group_id, ""),
                is_overdue=bool(
                    review
                    and review.status == Review.Status.OPEN
                    and review.due_date
                    and review.due_date < today
                ),
            )
        )
    return CampaignProgress(
        campaign, tuple(sorted(groups, key=lambda g: (g.group_name.casefold(), g.group_id)))
    )


def campaign_list() -> QuerySet[ReviewCampaign]:
    return ReviewCampaign.objects.annotate(review_count=Count("reviews"))


def campaign_csv_rows(campaign: ReviewCampaign) -> Iterator[str]:
    """The campaign's evidence as one CSV: every entry of every review, with its decision."""
    reviews = {r.pk: r for r in campaign.reviews.all()}
    items = (
        ReviewItem.objects.filter(review__campaign=campaign)
        .order_by("review__group_name", "review_id", "email")
        .iterator(chunk_size=2000)
    )
    rows = (
        (
            campaign.name,
            reviews[item.review_id].group_name,
            reviews[item.review_id].group_id,
            reviews[item.review_id].reviewer_username,
            reviews[item.review_id].get_status_display(),
            item.email,
            item.name,
            "invite" if item.is_invite else "user",
            {"keep": "kept", "remove": "removed"}.get(item.decision, "undecided"),
            item.get_removal_display() if item.removal else "",
            item.decided_by_username,
            item.note,
            item.decided_at.isoformat() if item.decided_at else "",
        )
        for item in items
    )
    header = (
        "campaign",
        "group",
        "group_id",
        "reviewer",
        "review_status",
        "email",
        "name",
        "kind",
        "decision",
        "removal",
        "decided_by",
        "note",
        "decided_at",
    )
    return csv_chunks(header, rows)
