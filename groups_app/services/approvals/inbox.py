"""What is waiting for one person: the decisions they may take and the changes they must follow up.

A selector over local records only (no upstream call), cheap enough for every page's
navigation count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from groups_app.models import AccessRequest, AuditEntry, ChangeProposal, Review
from groups_app.roles import HANDLE_ACCESS_REQUESTS, RUN_REVIEWS, is_administrator
from groups_app.services.approvals import access_requests, proposals
from groups_app.services.reconcile import abandoned_before

# A queue of hundreds shows its oldest items; the count says how many there are.
SHOWN = 50
# Requests are told apart from one's own one by one (canonical identities); past this many the
# count stops growing.
COUNTED = 500
# Requests of one's own that need the requester's attention.
MINE_NEED_ATTENTION = (AccessRequest.Status.PROVISIONING_FAILED, AccessRequest.Status.OUTCOME_UNKNOWN)


@dataclass(frozen=True)
class Inbox:
    proposals: list[ChangeProposal] = field(default_factory=list)
    access_requests: list[AccessRequest] = field(default_factory=list)
    access_request_count: int = 0
    reviews: list[Review] = field(default_factory=list)
    unknown_changes: list[AuditEntry] = field(default_factory=list)
    my_requests: list[AccessRequest] = field(default_factory=list)

    @property
    def count(self) -> int:
        return (
            len(self.proposals)
            + self.access_request_count
            + len(self.reviews)
            + len(self.unknown_changes)
            + len(self.my_requests)
        )

    @property
    def is_empty(self) -> bool:
        return self.count == 0


def _decidable_requests(user: Any) -> QuerySet[AccessRequest]:
    waiting = AccessRequest.objects.needs_person(stuck_before=abandoned_before())
    # Filed by the user, or for one of their addresses: someone else decides those.
    return waiting.exclude(requester=user).select_related("requester").order_by("created_at", "id")


def inbox_for(user: Any) -> Inbox:
    """Everything that waits for `user`, oldest first in each kind."""
    if not getattr(user, "is_authenticated", False):
        return Inbox()
    found: dict[str, Any] = {}
    if is_administrator(user):
        waiting = (
            ChangeProposal.objects.needs_person().select_related("proposed_by").order_by("proposed_at", "id")
        )
        found["proposals"] = [p for p in waiting[:COUNTED] if proposals.may_decide(p, user)][:SHOWN]
    if user.has_perm(HANDLE_ACCESS_REQUESTS):
        candidates = list(_decidable_requests(user)[:COUNTED])
        allowed = access_requests.decidable_by(user, candidates)
        decidable = [r for r in candidates if r.pk in allowed]
        found["access_requests"] = decidable[:SHOWN]
        found["access_request_count"] = len(decidable)
    if user.has_perm(RUN_REVIEWS) or Review.objects.filter(reviewer=user, status=Review.Status.OPEN).exists():
        today = timezone.localdate()
        mine = Q(reviewer=user)
        if user.has_perm(RUN_REVIEWS):
            mine |= Q(due_date__lt=today)  # overdue reviews wait for whoever runs reviews
        found["reviews"] = list(
            Review.objects.filter(mine, status=Review.Status.OPEN).order_by("due_date", "started_at")[:SHOWN]
        )
    found["unknown_changes"] = list(AuditEntry.objects.unresolved().filter(actor_user_id=user.pk)[:SHOWN])
    found["my_requests"] = list(
        AccessRequest.objects.filter(requester=user, status__in=MINE_NEED_ATTENTION).order_by("created_at")[
            :SHOWN
        ]
    )
    return Inbox(**found)


def inbox_count(user: Any) -> int:
    """How many things wait for `user` (the navigation's count)."""
    return inbox_for(user).count
