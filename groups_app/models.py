from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models

from groups_app import roles
from groups_app.fields import SealedTextField
from groups_app.rules.identity import InvalidIdentity, canonical_identity


class Dashboard(models.Model):
    """Carries the dashboard's custom permissions; it has no table of its own.

    The roles (Django groups Viewer, Help desk, Administrator) are sets of these;
    see `groups_app.roles`.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = (
            ("view_groups", "Can view groups, members, permissions and the audit log"),
            ("change_membership", "Can add, remove and replace the members of a group"),
            ("handle_access_requests", "Can file, approve and deny access requests"),
            ("manage_groups", "Can create, rename and delete groups"),
            ("change_permissions", "Can change the roles and resources a group grants"),
            ("run_reviews", "Can start and complete membership reviews"),
        )

    def __str__(self) -> str:
        return "Group Admin"


class AuditQuerySet(models.QuerySet):
    """Audit entries are append-only: no bulk update or delete, only the one-time completion."""

    def update(self, **kwargs):
        raise PermissionError("Audit entries cannot be changed; complete a pending entry with complete().")

    def delete(self):
        raise PermissionError("Audit entries cannot be deleted.")

    def complete(self, pk: int, **fields) -> int:
        """Complete a pending entry; returns 0 if it was already completed (it never changes twice)."""
        return super(AuditQuerySet, self.filter(pk=pk, status=AuditEntry.Status.PENDING)).update(**fields)

    def resolve(self, pk: int, **fields) -> int:
        """Record what reconciliation found for an unknown outcome; returns 0 if already resolved."""
        unresolved = self.filter(pk=pk, status=AuditEntry.Status.UNKNOWN, resolution="")
        return super(AuditQuerySet, unresolved).update(**fields)

    def unresolved(self) -> AuditQuerySet:
        """Entries whose outcome still needs reading back."""
        return self.filter(status=AuditEntry.Status.UNKNOWN, resolution="")


class AuditEntry(models.Model):
    """One attempt at a change made through the dashboard, written before the upstream call."""

    class Status(models.TextChoices):
        PENDING = "pending", "In progress"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Outcome unknown"
        REFUSED = "refused", "Refused"
        FILED = "filed", "Filed for approval"

    class Resolution(models.TextChoices):
        """What reading back an unknown outcome found."""

        NONE = "", "Not reconciled yet"
        APPLIED = "applied", "Applied"
        NOT_APPLIED = "not_applied", "Not applied"
        PARTLY_APPLIED = "partly_applied", "Partly applied"

    class Action(models.TextChoices):
        GROUP_CREATE = "group.create", "Create group"
        GROUP_RENAME = "group.rename", "Rename group"
        GROUP_DELETE = "group.delete", "Delete group"
        MEMBERS_ADD = "members.add", "Add members"
        MEMBERS_REMOVE = "members.remove", "Remove members"
        MEMBERS_REPLACE = "members.replace", "Replace members"
        PERMISSIONS_ADD = "permissions.add", "Add permissions"
        PERMISSIONS_REPLACE = "permissions.replace", "Replace permissions"
        PERMISSIONS_PROPOSE = "permissions.propose", "Propose a privileged grant"
        PROPOSAL_APPROVE = "permissions.approve", "Approve a proposed grant"
        PROPOSAL_REJECT = "permissions.reject", "Reject a proposed grant"
        REQUEST_FILE = "request.file", "File access request"
        REQUEST_APPROVE = "request.approve", "Approve access request"
        REQUEST_DENY = "request.deny", "Deny access request"
        REQUEST_CANCEL = "request.cancel", "Cancel access request"
        REQUEST_CLOSE = "request.close", "Close access request as not possible"
        REQUEST_EXPIRE = "request.expire", "Expire access"
        REVIEW_START = "review.start", "Start review"
        REVIEW_ASSIGN = "review.assign", "Assign a review"
        REVIEW_COMPLETE = "review.complete", "Complete review"
        ACCOUNT_ROLE_GRANT = "account.role_grant", "Grant a dashboard role"
        ACCOUNT_ROLE_REMOVE = "account.role_remove", "Remove a dashboard role"
        ACCOUNT_PASSWORD_RESET = "account.password_reset", "Password reset requested"
        API_TOKEN_CREATE = "account.api_token_create", "Create an API token"
        API_TOKEN_REVOKE = "account.api_token_revoke", "Revoke an API token"
        ACCOUNT_CREATE = "account.create", "Create a dashboard account"
        ACCOUNT_CHANGE = "account.change", "Change a dashboard account"
        ACCOUNT_PERMISSIONS = "account.permissions", "Change an account's direct permissions"
        ROLE_PERMISSIONS = "role.permissions", "Change a role's permissions"
        IDENTITY_LINK = "account.identity_link", "Link a single sign-on identity"
        IDENTITY_UNLINK = "account.identity_unlink", "Unlink a single sign-on identity"
        OBSERVED = "observed", "Observed outside Group Admin"
        OWNER_ADD = "owner.add", "Add a group owner"
        OWNER_REMOVE = "owner.remove", "Remove a group owner"
        UNDO = "undo", "Undo an outside change"
        ACCESS_END_SET = "access.end_set", "Set an access end date"
        ACCESS_RENEW = "access.renew", "Renew access"
        ACCESS_LET_EXPIRE = "access.let_expire", "Let access expire"
        GROUP_DESCRIBE = "group.describe", "Describe a group"
        CAMPAIGN_START = "campaign.start", "Start a review campaign"
        REFUSALS_OVER_LIMIT = "refusals.over_limit", "Refused attempts over the limit"
        JOB_CANCEL = "job.cancel", "Cancel a job"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Who acted, as a snapshot: deleting an account changes no entry (the table refuses updates).
    actor_user_id = models.PositiveBigIntegerField(null=True, blank=True, help_text="The account's id then.")
    actor_username = models.CharField(max_length=150, help_text="Kept even if the account is deleted.")
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    group_id = models.CharField(max_length=64, blank=True, db_index=True)
    group_name = models.CharField(max_length=200, blank=True, help_text="The group's name at the time.")
    summary = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    resolution = models.CharField(max_length=16, choices=Resolution.choices, default="", blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True, help_text="Who ran the reconciliation.")
    evidence = models.JSONField(
        default=dict, blank=True, help_text="What reconciliation read back, and when."
    )
    upstream_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    search_text = models.TextField(
        blank=True,
        editable=False,
        help_text="What the text filter searches, lower-cased (indexed on PostgreSQL).",
    )
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    request_id = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="Ours, in the server log."
    )
    inbound_request_id = models.CharField(
        max_length=64, blank=True, help_text="X-Request-ID as the client or a proxy sent it (not verified)."
    )
    via = models.CharField(
        max_length=160,
        blank=True,
        help_text="How the actor acted when not through the pages: “API token deploy”.",
    )
    access_request = models.ForeignKey(
        "AccessRequest", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_entries"
    )
    review = models.ForeignKey(
        "Review", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_entries"
    )
    proposal = models.ForeignKey(
        "ChangeProposal", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_entries"
    )
    submission_key = models.CharField(  # noqa: DJ001 - NULL keeps keyless entries out of the unique constraint
        max_length=64, null=True, blank=True, help_text="One per form shown; stops a double submission."
    )

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        default_permissions = ("view",)
        verbose_name_plural = "audit entries"
        constraints = [
            # An attempt known not applied may be submitted again; any other may not.
            models.UniqueConstraint(
                fields=["submission_key"],
                condition=~models.Q(status__in=["failed", "refused"]),
                name="audit_one_live_entry_per_submitted_form",
            )
        ]

    def __str__(self) -> str:
        return self.summary

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("Audit entries cannot be changed.")
        self.search_text = self.text_to_search()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit entries cannot be deleted.")

    def text_to_search(self) -> str:
        """What the audit log's text filter searches (stored as `search_text`): one lower-cased
        string per entry, so that PostgreSQL answers "contains" from a trigram index instead of
        reading every entry."""
        parts = (
            self.summary,
            self.group_name,
            self.group_id,
            self.actor_username,
            self.via,
            self.error,
            json.dumps(self.details or {}, ensure_ascii=False, sort_keys=True),
        )
        return "\n".join(parts).lower()

    @property
    def outcome(self) -> str:
        if self.resolution:
            return f"{self.get_status_display()} — {self.get_resolution_display().lower()}"
        return self.get_status_display()

    @property
    def is_unresolved(self) -> bool:
        return self.status == self.Status.UNKNOWN and not self.resolution


class AccessRequestQuerySet(models.QuerySet):
    """Named questions about access requests, asked by the queue, the inbox and reconciliation."""

    def open_for(self, group_id: str) -> AccessRequestQuerySet:
        """Pending requests for one group."""
        return self.filter(group_id=group_id, status=AccessRequest.Status.PENDING)

    def stuck(self, *, before) -> AccessRequestQuerySet:
        """Approved, with provisioning started (or decided) before `before` and never finished:
        the process provisioning them stopped."""
        in_flight = models.Q(status__in=AccessRequest.IN_FLIGHT)
        started_before = models.Q(provisioning_started_at__lt=before) | models.Q(
            provisioning_started_at__isnull=True, decided_at__lt=before
        )
        return self.filter(in_flight & started_before)

    def needs_person(self, *, stuck_before) -> AccessRequestQuerySet:
        """Requests someone has to act on: decide, retry, reconcile, close, or rescue from a dead
        process."""
        return self.filter(status__in=AccessRequest.NEEDS_PERSON) | self.stuck(before=stuck_before)


class AccessRequest(models.Model):
    """Someone asking for one email to be added to one group, and what became of it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved — not yet provisioned"
        PROVISIONING = "provisioning", "Approved — provisioning"
        PROVISIONED = "provisioned", "Provisioned"
        PROVISIONING_FAILED = "provisioning_failed", "Approved — provisioning failed"
        OUTCOME_UNKNOWN = "outcome_unknown", "Approved — outcome unknown"
        CLOSED = "closed", "Closed as not possible"
        DENIED = "denied", "Denied"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"

    group_id = models.CharField(max_length=64, db_index=True)
    group_name = models.CharField(max_length=200)
    email = models.EmailField(help_text="Whose access; stored lower-case.")
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requester_username = models.CharField(max_length=150)
    justification = models.TextField()
    needed_until = models.DateField(null=True, blank=True, help_text="Access ends after this day.")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PENDING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by_username = models.CharField(max_length=150, blank=True)
    decision_reason = models.TextField(blank=True)
    provisioning_entry = models.ForeignKey(
        AuditEntry,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The audit entry of the membership change that granted the access.",
    )
    provisioning_error = models.TextField(blank=True)
    provisioning_started_at = models.DateTimeField(null=True, blank=True)
    provisioning_key = models.CharField(
        max_length=64, blank=True, help_text="The submission key of the latest provisioning attempt."
    )
    expired_at = models.DateTimeField(null=True, blank=True)
    owner_approved_by_username = models.CharField(
        max_length=150,
        blank=True,
        help_text="An owner's approval of a request for a privileged group, waiting for an Administrator.",
    )
    owner_approved_at = models.DateTimeField(null=True, blank=True)
    is_direct = models.BooleanField(
        default=False, help_text="Recorded for a direct addition with an end date, not asked for."
    )
    expiry_notified_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="The last notice sent before the end date (days before it)."
    )
    expiry_notices_stopped = models.BooleanField(
        default=False, help_text="Let it expire: no further notices before the end date."
    )

    objects = AccessRequestQuerySet.as_manager()

    # Requests a person has to act on: decide, retry, reconcile or close.
    NEEDS_PERSON = (
        Status.PENDING,
        Status.PROVISIONING_FAILED,
        Status.OUTCOME_UNKNOWN,
    )
    # Approved, with provisioning not finished: stuck if the process that ran it died.
    IN_FLIGHT = (Status.APPROVED, Status.PROVISIONING)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["group_id", "email"],
                condition=models.Q(status="pending"),
                name="one_pending_request_per_email_and_group",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.group_name}"


class ReviewCampaign(models.Model):
    """Reviews of many groups at once (chosen, every privileged group, or every group with
    owners), each assigned to the group's owners or a named reviewer, due on one date."""

    class Scope(models.TextChoices):
        CHOSEN = "chosen", "Chosen groups"
        PRIVILEGED = "privileged", "Every privileged group"
        OWNED = "owned", "Every group with owners"

    class Status(models.TextChoices):
        OPENING = "opening", "Opening its reviews"
        OPEN = "open", "Open"

    name = models.CharField(max_length=200)
    scope = models.CharField(max_length=12, choices=Scope.choices)
    group_ids = models.JSONField(default=list, help_text="The groups it covers, as planned when started.")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewer_username = models.CharField(max_length=150, blank=True, help_text="Empty: each group's owners.")
    due_date = models.DateField()
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_by_username = models.CharField(max_length=150)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPENING)
    problems = models.JSONField(
        default=dict, blank=True, help_text="Groups whose review could not open, and why."
    )

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return self.name


class Review(models.Model):
    """A snapshot of a group's users and invites, each to be kept or removed."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled (a second review of the same group)"

    group_id = models.CharField(max_length=64, db_index=True)
    group_name = models.CharField(max_length=200)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_by_username = models.CharField(max_length=150)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by_username = models.CharField(max_length=150, blank=True)
    removal_job = models.ForeignKey(
        "Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The job removing the entries marked remove, when there were many.",
    )  # fmt: skip
    expected_count = models.PositiveIntegerField(help_text="memberCount when the snapshot was taken.")
    snapshot_count = models.PositiveIntegerField(help_text="Users and invites actually read.")
    due_date = models.DateField(null=True, blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewer_username = models.CharField(max_length=150, blank=True)
    campaign = models.ForeignKey(
        ReviewCampaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="reviews"
    )
    reminded_at = models.DateTimeField(
        null=True, blank=True, help_text="When the due-date reminder was sent."
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["group_id"], condition=models.Q(status="open"), name="one_open_review_per_group"
            )
        ]

    def __str__(self) -> str:
        return f"Review of {self.group_name} ({self.started_at:%Y-%m-%d})"

    @property
    def count_mismatch(self) -> bool:
        return self.expected_count != self.snapshot_count


class ReviewItem(models.Model):
    """One user or invite of a review's snapshot, and the reviewer's decision."""

    class Decision(models.TextChoices):
        UNDECIDED = "", "Undecided"
        KEEP = "keep", "Keep"
        REMOVE = "remove", "Remove"

    class Removal(models.TextChoices):
        NONE = "", "—"
        REMOVED = "removed", "Removed"
        FAILED = "failed", "Removal failed"

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="items")
    email = models.EmailField()
    name = models.CharField(max_length=200, blank=True)
    user_id = models.CharField(max_length=64, blank=True)
    is_invite = models.BooleanField(default=False)
    decision = models.CharField(max_length=8, choices=Decision.choices, default="", blank=True, db_index=True)
    note = models.CharField(max_length=500, blank=True)
    decided_by_username = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    removal = models.CharField(max_length=8, choices=Removal.choices, default="", blank=True)
    removal_error = models.TextField(blank=True)

    class Meta:
        ordering = ["is_invite", "email"]
        constraints = [models.UniqueConstraint(fields=["review", "email"], name="one_review_item_per_email")]

    def __str__(self) -> str:
        return self.email


class ChangeProposalQuerySet(models.QuerySet):
    def needs_person(self) -> ChangeProposalQuerySet:
        """Proposals waiting for a second Administrator."""
        return self.filter(status=ChangeProposal.Status.PENDING)

    def open_for(self, group_id: str) -> ChangeProposalQuerySet:
        """One group's proposals waiting for a decision, oldest first."""
        return self.needs_person().filter(group_id=group_id).order_by("proposed_at", "id")


class ChangeProposal(models.Model):
    """A permission change that grants a privileged role, waiting for a second Administrator.

    The two-person rule: whoever proposes it cannot apply it; another Administrator approves
    (the change then runs through the change pipeline) or rejects it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a second Administrator"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    class Kind(models.TextChoices):
        ADD = "permissions.add", "Grant"
        REPLACE = "permissions.replace", "Replace all permissions"

    kind = models.CharField(max_length=24, choices=Kind.choices)
    group_id = models.CharField(max_length=64, db_index=True)
    group_name = models.CharField(max_length=200)
    permissions = models.JSONField(help_text="The grants as the API takes them, labels included.")
    summary = models.JSONField(default=list, help_text="The grants described for people.")
    fingerprint = models.CharField(max_length=64, blank=True, help_text="The previewed permission set.")
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    proposed_by_username = models.CharField(max_length=150)
    proposed_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    decided_by_username = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    entry = models.ForeignKey(
        AuditEntry,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The audit entry of the change, once approved.",
    )
    members = models.JSONField(
        default=list, help_text="The group's users and invites when it was proposed ({email, kind})."
    )
    joined_since_privileged = models.JSONField(
        default=list,
        help_text="Who joined since the group last granted a privileged role (empty: it never did, "
        "as far as the audit log knows).",
    )
    last_privileged_at = models.DateTimeField(null=True, blank=True)

    objects = ChangeProposalQuerySet.as_manager()

    class Meta:
        ordering = ["-proposed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.group_name}"


class SignInFailure(models.Model):
    """A refused sign-in or password reset request, for Administrators to see (never the password)."""

    class Reason(models.TextChoices):
        REJECTED = "rejected", "Wrong username or password"
        LOCKED = "locked", "Refused: too many failures"
        SSO_REFUSED = "sso_refused", "Single sign-on refused"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    username = models.CharField(max_length=254, blank=True, db_index=True, help_text="As typed.")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    path = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    detail = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveIntegerField(
        default=1, help_text="More than one: attempts over the per-minute limit, counted in one row."
    )
    last_at = models.DateTimeField(null=True, blank=True, help_text="The last attempt counted in this row.")

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.username or '?'} from {self.client_ip or '?'}: {self.get_reason_display()}"


class RefusalTally(models.Model):
    """Refused attempts of one account (or anonymous address) over the per-minute limit, counted
    while the minute runs; once it is over, one audit entry says how many (audit entries are
    append-only, so the count cannot wait in one). Deleted when that entry is written."""

    actor_key = models.CharField(max_length=80, help_text="user:<id>, or address:<network> when anonymous.")
    window_start = models.DateTimeField(db_index=True)
    actor_user_id = models.PositiveBigIntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150)
    actor_email = models.CharField(max_length=254, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    refused = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["actor_key", "window_start"], name="one_refusal_tally_per_minute")
        ]

    def __str__(self) -> str:
        return f"{self.refused} refused attempts of {self.actor_username} from {self.window_start:%H:%M}"


class InviteRecord(models.Model):
    """When an email was first invited to a group through Group Admin: reviews show invite ages
    from here (one indexed lookup per page) instead of reading every past audit entry."""

    group_id = models.CharField(max_length=64)
    email = models.EmailField()
    invited_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group_id", "email"], name="one_invite_record_per_email")
        ]

    def __str__(self) -> str:
        return f"{self.email} invited to {self.group_id}"


class SyncRun(models.Model):
    """One reading of the workspace into the mirror: all of it (full), or one group after a change."""

    class Kind(models.TextChoices):
        FULL = "full", "Whole workspace"
        QUICK = "quick", "Changed groups (quick pass)"
        GROUP = "group", "One group"

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested (waiting for a worker)"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        ABANDONED = "abandoned", "Abandoned (the process stopped)"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    group_id = models.CharField(max_length=64, blank=True, help_text="The group a refresh read.")
    trigger = models.CharField(max_length=200, blank=True, help_text="Why it ran.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(db_index=True)
    heartbeat_at = models.DateTimeField(help_text="Last sign of life; a stale running sync is abandoned.")
    finished_at = models.DateTimeField(null=True, blank=True)
    calls = models.PositiveIntegerField(default=0, help_text="Upstream calls made.")
    pages = models.PositiveIntegerField(default=0, help_text="Listing pages read.")
    page_size = models.PositiveIntegerField(default=0)
    group_count = models.PositiveIntegerField(default=0, help_text="Groups listed.")
    groups_read = models.PositiveIntegerField(default=0, help_text="Groups whose members were read.")
    rotated_count = models.PositiveIntegerField(
        default=0, help_text="Of those, read because their last whole reading was the oldest."
    )
    member_count = models.PositiveIntegerField(default=0, help_text="Members of the groups read.")
    observed_count = models.PositiveIntegerField(default=0, help_text="Changes made outside Group Admin.")
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # Never two syncs of the same scope at once (a full sync's group_id is empty).
            models.UniqueConstraint(
                fields=["kind", "group_id"],
                condition=models.Q(status="running"),
                name="mirror_one_running_sync_per_scope",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} sync #{self.pk}: {self.get_status_display()}"

    @property
    def succeeded(self) -> bool:
        return self.status == self.Status.SUCCEEDED

    @property
    def duration(self):
        return (self.finished_at - self.started_at) if self.finished_at else None


class MirrorGroup(models.Model):
    """A group as the last sync or refresh read it. Permissions are kept as Segment sent them
    (labels and unknown fields included), so nothing is lost between reading and showing."""

    group_id = models.CharField(max_length=64, primary_key=True)
    name = models.CharField(max_length=200)
    name_key = models.CharField(max_length=200, db_index=True, help_text="The name, lower-cased.")
    member_count = models.PositiveIntegerField(default=0, db_index=True)
    user_count = models.PositiveIntegerField(default=0)
    invite_count = models.PositiveIntegerField(default=0)
    permissions = models.JSONField(default=list, blank=True)
    read_at = models.DateTimeField(db_index=True, help_text="When Segment was read for this group.")
    sync = models.ForeignKey(SyncRun, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["name_key", "group_id"]

    def __str__(self) -> str:
        return self.name


class MirrorMember(models.Model):
    """A workspace user or a pending invite in a mirrored group."""

    class Kind(models.TextChoices):
        USER = "user", "User"
        INVITE = "invite", "Pending invite"

    group = models.ForeignKey(MirrorGroup, on_delete=models.CASCADE, related_name="members")
    email = models.CharField(max_length=254, db_index=True, help_text="Lower-cased.")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    user_id = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=200, blank=True)
    name_key = models.CharField(max_length=200, blank=True, db_index=True, help_text="The name, lower-cased.")

    class Meta:
        ordering = ["email"]
        constraints = [models.UniqueConstraint(fields=["group", "email"], name="mirror_one_member_per_email")]

    def __str__(self) -> str:
        return f"{self.email} in {self.group_id}"


class MirrorRole(models.Model):
    role_id = models.CharField(max_length=64, primary_key=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.name


class PeriodicJob(models.Model):
    """When a periodic job is next due. Every worker looks; one conditional update decides which
    of them enqueues it, so a job runs once per period however many workers there are."""

    name = models.CharField(max_length=64, primary_key=True)
    next_run_at = models.DateTimeField()
    last_enqueued_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class PersonKey(models.Model):
    """The opaque key that stands for one address in People's URLs, so that no address reaches a
    URL, a link, a redirect, a browser's history, a Referer or a server's access log. Random,
    issued the first time a link to the address is shown, and kept: a bookmark keeps working.

    Keyed by the address as the mirror stores it (lower-cased), not by its canonical identity:
    Segment lists `ada+ops@example.com` and `ada@example.com` as two members, and a person's
    page shows and changes the memberships of one address."""

    key = models.CharField(max_length=32, unique=True)
    email = models.CharField(max_length=254, unique=True, help_text="Lower-cased.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key


class ApiToken(models.Model):
    """A personal API token: its account's role, narrowed to a scope. Only a digest is stored;
    the token itself is shown once, when it is created."""

    class Scope(models.TextChoices):
        READ = "read", "Read only"
        REQUEST = "request", "Read and file access requests"
        CHANGE = "change", "Everything the account's role allows"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=8, choices=Scope.choices)
    prefix = models.CharField(max_length=16, help_text="The token's first characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the token.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "name"],
                condition=models.Q(revoked_at__isnull=True),
                name="one_live_api_token_per_name",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def caller_key(self) -> str:
        """Stands for the caller in rate limits and idempotency keys: the token's id, or for a
        provider's access token (never stored) the digest of its identity."""
        return str(self.pk) if self.pk is not None else self.digest


class TokenAccount(User):
    """An account acting through an API token: what its role allows, within the token's scope.

    Services receive it as the actor; `has_perm` is how every rule asks about the role, so a
    token never does more than its scope, nor more than the account."""

    api_token: ApiToken

    class Meta:
        proxy = True
        default_permissions = ()

    def has_perm(self, perm: str, obj=None) -> bool:
        allowed = TOKEN_SCOPE_PERMISSIONS[self.api_token.scope]
        return perm in allowed and super().has_perm(perm, obj)


# What each scope lets a token's account do, at most (its role may allow less).
TOKEN_SCOPE_PERMISSIONS: dict[str, frozenset[str]] = {
    ApiToken.Scope.READ: frozenset({roles.VIEW}),
    ApiToken.Scope.REQUEST: frozenset({roles.VIEW, roles.HANDLE_ACCESS_REQUESTS}),
    ApiToken.Scope.CHANGE: roles.ROLE_PERMISSIONS[roles.ADMINISTRATOR],
}


class WebhookDelivery(models.Model):
    """One event for one receiver (a webhook URL or Slack), and how its delivery went."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        RETRYING = "retrying", "Failed, will retry"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Gave up"

    event = models.CharField(max_length=40, db_index=True)
    event_id = models.CharField(
        max_length=36, db_index=True, help_text="The same for every receiver of one event."
    )
    # The URL itself may hold a secret (Slack's do): only its digest is kept, to find it again
    # among the configured ones, and a readable part of it (scheme, host, path) to show.
    receiver = models.CharField(max_length=200, help_text="Where it goes, without any query or secret.")
    url_digest = models.CharField(max_length=64)
    is_slack = models.BooleanField(default=False)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # An event reaches each receiver once: an event that happens once (review.due) and is
            # emitted twice at the same moment is recorded once.
            models.UniqueConstraint(
                fields=["event_id", "url_digest"], name="one_delivery_per_event_and_receiver"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.receiver}"


class ExternalIdentity(models.Model):
    """Who someone is at the identity provider: (issuer, subject), never an email. Single sign-on
    finds the account by this pair; an email that changes at the provider never moves it."""

    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities"
    )
    email = models.CharField(max_length=254, blank=True, help_text="The email the provider last asserted.")
    linked_at = models.DateTimeField(auto_now_add=True)
    linked_by = models.CharField(max_length=150, help_text="Who linked it: a person, or the first sign-in.")
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "single sign-on identity"
        verbose_name_plural = "single sign-on identities"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="one_account_per_external_identity")
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class ExternalSession(models.Model):
    """One browser session signed in through single sign-on: the provider's tokens (kept here, not
    in the session, so that concurrent requests saving the session cannot bring back a spent refresh
    token) and when the provider last confirmed the person's roles."""

    identity = models.ForeignKey(ExternalIdentity, on_delete=models.CASCADE, related_name="sessions")
    # Encrypted at rest: a copy of the database alone cannot act as the person at the provider.
    access_token = SealedTextField(blank=True, purpose="single sign-on access token")
    refresh_token = SealedTextField(blank=True, purpose="single sign-on refresh token")
    checked_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Session of {self.identity}"


class GroupOwnerQuerySet(models.QuerySet):
    def of_account(self, account) -> GroupOwnerQuerySet:
        """Ownerships of an account: by the account itself, or by its email's canonical identity."""
        if not getattr(account, "pk", None):
            return self.none()
        try:
            identity = canonical_identity(getattr(account, "email", "") or "")
        except InvalidIdentity:
            identity = ""
        matches = models.Q(user_id=account.pk)
        if identity:
            matches |= models.Q(identity=identity)
        return self.filter(matches)

    def owns(self, account, group_id: str) -> bool:
        """Whether `account` owns the group `group_id`."""
        return bool(group_id) and self.of_account(account).filter(group_id=group_id).exists()


class GroupOwner(models.Model):
    """An owner of a group: decides its access requests and changes its members (not a
    privileged group's), whatever their dashboard role. Named by account, or by email for
    someone who has not signed in yet; accounts match on the email's canonical identity."""

    group_id = models.CharField(max_length=64, db_index=True)
    group_name = models.CharField(max_length=200, help_text="The group's name when the owner was set.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="owned_groups"
    )
    email = models.EmailField(blank=True, help_text="As given, or the account's email then.")
    identity = models.CharField(
        max_length=254, blank=True, db_index=True, help_text="The email's canonical identity."
    )
    added_by_username = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = GroupOwnerQuerySet.as_manager()

    class Meta:
        ordering = ["group_id", "email", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["group_id", "identity"],
                condition=~models.Q(identity=""),
                name="one_owner_per_identity_and_group",
            ),
            models.UniqueConstraint(
                fields=["group_id", "user"],
                condition=models.Q(user__isnull=False),
                name="one_owner_per_account_and_group",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} owns {self.group_name}"

    @property
    def label(self) -> str:
        """How the owner is shown: the account's username and email, or the email alone."""
        if self.user_id and self.user is not None:
            email = self.user.email or self.email
            return f"{self.user.get_username()} ({email})" if email else self.user.get_username()
        return self.email


class GroupAbout(models.Model):
    """What a group is for, kept in Group Admin (Segment has no field for it): the catalogue
    of what people can request shows it."""

    group_id = models.CharField(max_length=64, primary_key=True)
    description = models.TextField(blank=True, help_text="What the group gives access to.")
    purpose = models.TextField(blank=True, help_text="Who should ask for it, and why.")
    updated_by_username = models.CharField(max_length=150, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"About {self.group_id}"


class WorkerHeartbeat(models.Model):
    """The last sign of life of one worker process: readiness and the metrics read it."""

    worker = models.CharField(max_length=200, primary_key=True, help_text="host:pid")
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.worker


class MirrorPerson(models.Model):
    """One person across the mirror's groups (users and invites), written by the syncs and the
    write-through: People searches and counts one row a person, however many memberships."""

    email = models.CharField(max_length=254, primary_key=True, help_text="Lower-cased.")
    name = models.CharField(max_length=200, blank=True)
    name_key = models.CharField(max_length=200, blank=True, help_text="The name, lower-cased.")
    group_count = models.PositiveIntegerField(default=0, help_text="Groups the person is in (invites too).")
    invite_count = models.PositiveIntegerField(default=0, help_text="Of those, as a pending invite.")

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    @property
    def is_user(self) -> bool:
        return self.group_count > self.invite_count


class MirrorResource(models.Model):
    """The name of a resource a permission can name (a source, a warehouse…), read by the full
    sync, so that a group's page shows names without reading every listing."""

    resource_type = models.CharField(max_length=16)
    resource_id = models.CharField(max_length=128)
    name = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["resource_type", "resource_id"], name="mirror_one_resource_per_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.resource_type} {self.name}"


class JobQuerySet(models.QuerySet):
    def unfinished(self) -> JobQuerySet:
        return self.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING])

    def stalled(self, *, before) -> JobQuerySet:
        """Jobs whose runner stopped beating (a worker that died), or queued ones nobody took."""
        return self.filter(
            models.Q(status=Job.Status.RUNNING, heartbeat_at__lt=before)
            | models.Q(status=Job.Status.QUEUED, created_at__lt=before)
        )

    def visible_to(self, user) -> JobQuerySet:
        """Its creator sees a job; Administrators see every job."""
        if roles.is_administrator(user):
            return self
        return self.filter(created_by=user)


class Job(models.Model):
    """Long work run in the worker item by item (a change to one person across many groups),
    shown on its own page with its progress and each item's outcome."""

    class Kind(models.TextChoices):
        PERSON_REMOVE = "person.remove", "Remove from groups"
        PERSON_ADD = "person.add", "Add to groups"
        REVIEW_REMOVE = "review.remove", "Remove a review's entries"
        MEMBERS_REPLACE = "members.replace", "Replace a group's members"
        AUDIT_EXPORT = "audit.export", "Export the audit log"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    title = models.CharField(max_length=300, help_text="What the job does, as its page says it.")
    key = models.CharField(max_length=32, unique=True, help_text="Part of each item's submission key.")
    submission_key = models.CharField(
        max_length=64,
        null=True,
        blank=True,
        unique=True,
        help_text="The form that started it: one job a form.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    created_by_username = models.CharField(max_length=150)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    parameters = models.JSONField(default=dict, blank=True)
    total = models.PositiveIntegerField(default=0)
    done_count = models.PositiveIntegerField(default=0, help_text="Items with an outcome (any).")
    succeeded_count = models.PositiveIntegerField(default=0)
    not_done_count = models.PositiveIntegerField(default=0, help_text="Failed, refused, unknown, cancelled.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Its runner's last sign of life.")
    runs = models.PositiveIntegerField(default=0, help_text="How many times a worker took it up.")
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Job #{self.pk}: {self.title}"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)


class JobItem(models.Model):
    """One step of a job: one change (and its own audit entry)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        SENDING = "sending", "Sending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Outcome unknown"
        REFUSED = "refused", "Refused"
        FILED = "filed", "Filed for approval"
        CANCELLED = "cancelled", "Cancelled"

    DONE = (
        Status.SUCCEEDED,
        Status.FAILED,
        Status.UNKNOWN,
        Status.REFUSED,
        Status.FILED,
        Status.CANCELLED,
    )

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    target_id = models.CharField(max_length=128, help_text="What it changes (a group id).")
    target_name = models.CharField(max_length=300, blank=True)
    payload = models.JSONField(default=dict, blank=True, help_text="What else the item's change needs.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    message = models.TextField(blank=True)
    audit_entry = models.ForeignKey(
        AuditEntry, null=True, blank=True, on_delete=models.SET_NULL, related_name="job_items"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="job_one_item_per_position")]
        indexes = [models.Index(fields=["job", "status"], name="job_items_by_status")]

    def __str__(self) -> str:
        return f"{self.job_id}.{self.position} {self.target_name}"

    @property
    def submission_key(self) -> str:
        """The key its change is sent under: the pipeline never sends the same key twice."""
        return f"job:{self.job.key}:{self.position}"


class JobOutput(models.Model):
    """A file a job produced (an export), kept in the database in gzip-compressed chunks, so
    that any web process can serve what any worker wrote."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="outputs")
    position = models.PositiveIntegerField()
    data = models.BinaryField(help_text="One chunk of the file, gzip-compressed.")

    class Meta:
        ordering = ["job", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="job_one_output_chunk_per_position")
        ]

    def __str__(self) -> str:
        return f"{self.job_id}.{self.position}"
