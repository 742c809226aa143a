"""Parse and validate input. Forms never call the API."""

from __future__ import annotations

import re
import uuid

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.validators import ProhibitNullCharactersValidator, RegexValidator
from django.db.models import Q

from groups_app.emails import parse_emails
from groups_app.models import AccessRequest, ApiToken, AuditEntry
from groups_app.segment import RESOURCE_TYPES, Label, Permission, Resource
from groups_app.services.groups import MEMBER_PAGE_SIZES, PAGE_SIZES, SORTS


class LenientForm(forms.Form):
    """A form of query parameters: a bad value falls back to its default, with a note."""

    def values(self) -> tuple[dict, list[str]]:
        self.is_valid()
        values, notes = {}, []
        for name, field in self.fields.items():
            if name in self.errors:
                values[name] = field.initial
                notes.append(f"Ignored an invalid {field.label.lower()}; showing the default instead.")
            else:
                value = self.cleaned_data.get(name)
                values[name] = field.initial if value in (None, "") else value
        return values, notes


class GroupListQuery(LenientForm):
    q = forms.CharField(label="Search", required=False, max_length=100, initial="", strip=True)
    sort = forms.ChoiceField(label="Sort", required=False, choices=[(s, s) for s in SORTS], initial="name")
    dir = forms.ChoiceField(
        label="Direction", required=False, choices=[("asc", "asc"), ("desc", "desc")], initial="asc"
    )
    size = forms.TypedChoiceField(
        label="Page size", required=False, choices=[(str(n), n) for n in PAGE_SIZES], coerce=int, initial=25
    )
    page = forms.IntegerField(label="Page number", required=False, min_value=1, initial=1)


class GroupDetailQuery(LenientForm):
    users_cursor = forms.CharField(label="Users page link", required=False, max_length=500, initial="")
    users_size = forms.TypedChoiceField(
        label="Users page size",
        required=False,
        choices=[(str(n), n) for n in MEMBER_PAGE_SIZES],
        coerce=int,
        initial=25,
    )
    users_start = forms.IntegerField(label="Users position", required=False, min_value=1, initial=1)
    invites_cursor = forms.CharField(label="Invites page link", required=False, max_length=500, initial="")
    invites_size = forms.TypedChoiceField(
        label="Invites page size",
        required=False,
        choices=[(str(n), n) for n in MEMBER_PAGE_SIZES],
        coerce=int,
        initial=25,
    )
    invites_start = forms.IntegerField(label="Invites position", required=False, min_value=1, initial=1)


class SubmissionKeyMixin(forms.Form):
    """Each form shown carries a fresh key, so submitting it twice cannot apply a change twice."""

    submission_key = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("submission_key", uuid.uuid4().hex)

    def renew_submission_key(self) -> None:
        """Show the form again with a new key: the person may submit it again on purpose."""
        self.data = self.data.copy()
        self.data["submission_key"] = uuid.uuid4().hex


# Segment identifiers as the URLs accept them (see urls.SegmentIdConverter).
SEGMENT_ID = re.compile(r"[A-Za-z0-9]{1,64}")
refuse_null_characters = ProhibitNullCharactersValidator()
segment_id_validator = RegexValidator(
    re.compile(rf"^{SEGMENT_ID.pattern}\Z"), "Not a group id (1 to 64 letters and digits)."
)


SUBMISSION_KEY = re.compile(r"[0-9A-Za-z_-]{1,64}")


def submission_key_from(data) -> str | None:
    """A submission key sent without a form (a plain button), if it looks like one we issue."""
    value = data.get("submission_key") or ""
    return value if SUBMISSION_KEY.fullmatch(value) else None


def segment_ids(values: list[str]) -> list[str]:
    """The values that are Segment ids, in order: anything else (a NUL, a path) never reaches a query."""
    return [value for value in values if isinstance(value, str) and SEGMENT_ID.fullmatch(value)]


def _kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB" if size >= 1024 else f"{size} bytes"


def email_list_candidates(text: str) -> list[str]:
    """Split a pasted list into candidate addresses: too large a paste, or an entry that is not
    an address at all, is refused here; whether each address may be used is the service's call.

    Raises:
        forms.ValidationError: the text is over MAX_EMAIL_LIST_BYTES, holds a NUL character,
        or has entries that are not addresses (each named, as typed).
    """
    refuse_null_characters(text)
    size = len(text.encode())
    if size > settings.MAX_EMAIL_LIST_BYTES:
        raise forms.ValidationError(
            f"This list is {_kib(size)}; at most {_kib(settings.MAX_EMAIL_LIST_BYTES)} of text (and "
            f"{settings.MAX_EMAILS_PER_CHANGE:,} emails) can be changed at once. Split it into several changes.",
            code="too_long",
        )
    parsed = parse_emails(text)
    if parsed.problems:
        raise forms.ValidationError(list(parsed.problems))
    return list(parsed.emails)


class EmailListField(forms.CharField):
    """A textarea of emails: bare addresses or `Name <address>`, separated by commas,
    semicolons, spaces or new lines (see groups_app.emails). It only splits the text: the
    change service checks each address and how many there are, and its message is shown here."""

    widget = forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "autocomplete": "off"})

    def __init__(self, *args, allow_empty: bool = False, **kwargs):
        super().__init__(*args, required=not allow_empty, **kwargs)
        self.allow_empty = allow_empty

    def clean(self, value):
        return email_list_candidates(super().clean(value))


class AddMembersForm(SubmissionKeyMixin):
    emails = EmailListField(
        label="Emails to add",
        help_text="Separate with commas, spaces, semicolons or new lines. People who are not yet "
        "workspace users get an invite.",
    )
    ends_on = forms.DateField(
        label="Access ends after (optional)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="People added are removed after this day; they and the group's owners are told before.",
    )


class RemoveMembersForm(SubmissionKeyMixin):
    emails = forms.CharField(widget=forms.MultipleHiddenInput, required=False)

    def __init__(self, *args, emails: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if emails is not None:
            self.initial["emails"] = emails

    def clean_emails(self):
        emails = email_list_candidates("\n".join(self.data.getlist("emails"))) if self.is_bound else []
        if not emails:
            raise forms.ValidationError("Choose at least one member to remove.")
        return emails


class ReplaceMembersForm(SubmissionKeyMixin):
    emails = EmailListField(
        label="The complete list of members",
        help_text="It starts with the current members and invites. Everyone not on the list is removed; "
        "an empty list removes everyone. You will see the changes before anything is sent.",
        allow_empty=True,
    )
    fingerprint = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)
    confirm_empty = forms.BooleanField(
        label="Yes, remove every member and invite of this group", required=False
    )


class GroupNameForm(SubmissionKeyMixin):
    # data-autofocus: when the form replaces the page header (htmx), the name field takes focus.
    name = forms.CharField(
        label="Name", max_length=100, strip=True, widget=forms.TextInput(attrs={"data-autofocus": ""})
    )


class DeleteGroupForm(SubmissionKeyMixin):
    confirm_name = forms.CharField(label="Type the group's name to confirm", max_length=200, strip=False)


# One resource: an id, optionally with labels that restrict the grant: `id[key=value, key=value]`.
RESOURCE_TOKEN = re.compile(r"([A-Za-z0-9_-]{1,64})(?:\[([^\[\]]*)\])?")
LABEL_PART = re.compile(r"^\s*([^=\s,\[\]]{1,100})\s*=\s*([^=,\[\]]{1,200}?)\s*$")


def _resource_tokens(text: str) -> list[str]:
    """Split on commas, semicolons and spaces that are not inside a label's brackets."""
    tokens, current, depth = [], [], 0
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth == 0 and (char in ",;" or char.isspace()):
            tokens.append("".join(current))
            current = []
        else:
            current.append(char)
    tokens.append("".join(current))
    return [token for token in tokens if token]


def parse_resources(text: str, resource_type: str) -> list[Resource]:
    """Parse `id, id[key=value], …` into resources of one type.

    Raises:
        forms.ValidationError: text that is not an id, or a label that is not key=value.
    """
    resources: dict[str, Resource] = {}
    for token in _resource_tokens(text):
        match = RESOURCE_TOKEN.fullmatch(token)
        if not match:
            raise forms.ValidationError(f"Not a resource id: {token}")
        resource_id, label_text = match.group(1), match.group(2)
        labels = []
        for part in filter(str.strip, (label_text or "").split(",")):
            label = LABEL_PART.match(part)
            if not label:
                raise forms.ValidationError(
                    f"Labels are written key=value; got {part.strip()!r} on {resource_id}."
                )
            labels.append(Label(key=label.group(1), value=label.group(2)))
        if labels and resource_type and resource_type != "WORKSPACE":
            raise forms.ValidationError("Only WORKSPACE resources carry labels.")
        resources.setdefault(resource_id, Resource(id=resource_id, type=resource_type, labels=tuple(labels)))
    if not resources:
        raise forms.ValidationError("Enter at least one resource id.")
    return list(resources.values())


def format_resources(resources) -> str:
    """Resources as the ids box shows them, labels included (the inverse of parse_resources)."""
    return ", ".join(
        r.id + (f"[{', '.join(f'{label.key}={label.value}' for label in r.labels)}]" if r.labels else "")
        for r in resources
    )


def role_choices(roles: dict) -> list[tuple[str, str]]:
    return [
        ("", "Choose a role…"),
        *sorted(((r.id, r.name) for r in roles.values()), key=lambda c: c[1].casefold()),
    ]


class PermissionForm(forms.Form):
    """One grant: a role on one or more resources of one type."""

    role = forms.ChoiceField(label="Role")
    resource_type = forms.ChoiceField(
        label="Resource type", choices=[("", "Choose a type…"), *((t, t.title()) for t in RESOURCE_TYPES)]
    )
    resource_ids = forms.CharField(
        label="Resource ids",
        help_text="One or more ids, separated by commas or spaces. Labels that restrict a workspace "
        "grant follow its id: ws123[environment=prod].",
        max_length=4000,
    )

    def __init__(self, *args, roles: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = role_choices(roles)
        self.roles = roles

    def clean(self):
        cleaned = super().clean()
        text, resource_type = cleaned.get("resource_ids"), cleaned.get("resource_type")
        cleaned.setdefault("resources", [])
        if text:
            try:
                cleaned["resources"] = parse_resources(text, resource_type or "")
            except forms.ValidationError as exc:
                self.add_error("resource_ids", exc)
        return cleaned

    def permission(self) -> Permission:
        role = self.roles[self.cleaned_data["role"]]
        return Permission(
            role_id=role.id, role_name=role.name, resources=tuple(self.cleaned_data["resources"])
        )


class AddPermissionForm(PermissionForm, SubmissionKeyMixin):
    """A grant, with resources picked by name (from the workspace's listings) or typed as ids."""

    picked = forms.MultipleChoiceField(label="Resources", required=False, widget=forms.CheckboxSelectMultiple)
    confirm_unknown = forms.BooleanField(
        label="Grant anyway: I checked these ids, although this workspace's listings do not have them",
        required=False,
    )

    def __init__(self, *args, catalog=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.catalog = catalog
        self.fields["resource_ids"].required = False
        self.fields["resource_ids"].label = "Resource ids (or pick them by name below)"
        resources = [r for group in (catalog.by_type.values() if catalog else ()) for r in group]
        self.fields["picked"].choices = [(f"{r.type}:{r.id}", r.name) for r in resources]

    def picker_groups(self) -> list[tuple[str, list]]:
        """The picker's check boxes, by resource type."""
        groups: dict[str, list] = {}
        for box in self["picked"]:
            groups.setdefault(box.data["value"].split(":", 1)[0], []).append(box)
        return list(groups.items())

    def clean(self):
        cleaned = super().clean()
        resource_type = cleaned.get("resource_type")
        picked = cleaned.get("picked") or []
        wrong = [value for value in picked if resource_type and not value.startswith(f"{resource_type}:")]
        if wrong:
            self.add_error("picked", f"Pick resources of the type chosen above ({resource_type.title()}).")
        typed = cleaned.get("resources") or []
        chosen = {r.id: r for r in typed}
        for value in picked:
            resource_id = value.split(":", 1)[1]
            chosen.setdefault(resource_id, Resource(id=resource_id, type=resource_type or ""))
        if not chosen and "resource_ids" not in self.errors:
            self.add_error("resource_ids", "Enter or pick at least one resource.")
        cleaned["resources"] = list(chosen.values())
        return cleaned


class PermissionRowForm(PermissionForm):
    """A row of the full permission set; a row left blank (no role, no ids) is ignored."""

    def has_changed(self) -> bool:
        return any(self[name].value() not in (None, "") for name in ("role", "resource_ids"))


class BasePermissionSetFormSet(forms.BaseFormSet):
    def permissions(self) -> list[Permission]:
        return [
            form.permission()
            for form in self.forms
            if form.cleaned_data and not self._should_delete_form(form)
        ]


PermissionSetFormSet = forms.formset_factory(
    PermissionRowForm, formset=BasePermissionSetFormSet, extra=1, can_delete=True, max_num=200
)


class PermissionSetForm(SubmissionKeyMixin):
    fingerprint = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)
    confirm_empty = forms.BooleanField(label="Yes, remove every permission of this group", required=False)
    confirm_unknown = forms.BooleanField(
        label="Grant anyway: I checked these ids, although this workspace's listings do not have them",
        required=False,
    )


def permission_rows(permissions) -> list[dict]:
    """Initial formset rows for a group's current permissions, one row per role and resource type."""
    rows = []
    for permission in permissions:
        by_type: dict[str, list[Resource]] = {}
        for resource in permission.resources:
            by_type.setdefault(resource.type, []).append(resource)
        for resource_type, resources in sorted(by_type.items()):
            rows.append(
                {
                    "role": permission.role_id,
                    "resource_type": resource_type,
                    "resource_ids": format_resources(resources),
                }
            )
    return rows


class AuditFilterForm(forms.Form):
    q = forms.CharField(label="Text", required=False, max_length=200)
    actor = forms.CharField(
        label="Actor",
        required=False,
        max_length=150,
        widget=forms.TextInput(attrs={"list": "actor-choices", "autocomplete": "off"}),
        help_text="A whole username in any letter case (ada, not ad); pick an account from the list.",
    )
    action = forms.ChoiceField(label="Action", required=False)
    group = forms.CharField(label="Group (id or name)", required=False, max_length=200)
    status = forms.ChoiceField(label="Outcome", required=False)
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", "Any action"), *AuditEntry.Action.choices]
        self.fields["status"].choices = [("", "Any outcome"), *AuditEntry.Status.choices]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("date_from") and cleaned.get("date_to") and cleaned["date_from"] > cleaned["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned


class AccessRequestForm(forms.Form):
    group = forms.ChoiceField(label="Group")
    emails = EmailListField(
        label="For whom",
        allow_empty=True,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off"}),
        help_text="Leave empty to request access for yourself. Help desk: one or more emails.",
    )
    justification = forms.CharField(
        label="Why is the access needed?", widget=forms.Textarea(attrs={"rows": 3}), max_length=2000
    )
    needed_until = forms.DateField(
        label="Needed until (optional)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The access ends after this day.",
    )

    def __init__(
        self, *args, groups: list[tuple[str, str]] = (), can_file_for_others: bool = False, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.fields["group"].choices = [("", "Choose a group…"), *groups]
        if not can_file_for_others:
            del self.fields["emails"]


class IdListField(forms.Field):
    """Several ids, sent as one name repeated (ticked boxes)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[int]:
        try:
            ids = [int(v) for v in value or ()]
        except (TypeError, ValueError):
            raise forms.ValidationError("Choose requests from the queue.") from None
        if any(not 0 < i < 2**31 for i in ids):
            raise forms.ValidationError("Choose requests from the queue.")
        return list(dict.fromkeys(ids))


class BulkDecisionForm(forms.Form):
    """The queue's ticked requests, approved or denied together (each its own decision)."""

    ids = IdListField(error_messages={"required": "Tick at least one request."})
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("deny", "Deny")])
    reason = forms.CharField(
        label="Reason for denying (sent to each requester)", required=False, max_length=2000
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("decision") == "deny" and not (cleaned.get("reason") or "").strip():
            self.add_error("reason", "Give a reason for denying them.")
        return cleaned


class DenyForm(forms.Form):
    reason = forms.CharField(
        label="Reason (sent to the requester)", widget=forms.Textarea(attrs={"rows": 2}), max_length=2000
    )


class CloseRequestForm(forms.Form):
    reason = forms.CharField(
        label="Why it cannot be done (sent to the requester)",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
    )


class RequestQueueFilter(forms.Form):
    status = forms.ChoiceField(label="Status", required=False)
    group = forms.CharField(label="Group", required=False, max_length=200)
    requester = forms.CharField(label="Requester", required=False, max_length=150)
    older_than_days = forms.IntegerField(
        label="Older than (days)", required=False, min_value=0, max_value=3650
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [
            ("open", "Needs a person"),
            ("", "Any"),
            *AccessRequest.Status.choices,
        ]


class ReviewAssignForm(forms.Form):
    reviewer = forms.ModelChoiceField(
        label="Reviewer", queryset=None, required=False, empty_label="Nobody in particular"
    )
    due_date = forms.DateField(label="Due", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        reviewers = Q(is_superuser=True) | Q(
            groups__permissions__codename="run_reviews",
            groups__permissions__content_type__app_label="groups_app",
        )
        self.fields["reviewer"].queryset = (
            get_user_model().objects.filter(reviewers, is_active=True).distinct().order_by("username")
        )


class ReviewListQuery(forms.Form):
    """The reviews list's filter: one group's reviews."""

    group = forms.CharField(
        label="Group id", required=False, max_length=64, validators=[segment_id_validator]
    )


class MemberSearchQuery(forms.Form):
    """Search within one group's members (a group's page)."""

    q = forms.CharField(label="Search members", required=False, max_length=254, strip=True)


class ProposalRejectForm(forms.Form):
    # Not required here: the service refuses an empty reason, and audits that refusal.
    reason = forms.CharField(
        label="Why it is rejected", widget=forms.Textarea(attrs={"rows": 2}), max_length=2000, required=False
    )


class ReviewDecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("keep", "Keep"), ("remove", "Remove"), ("", "Undecided")], required=False
    )
    note = forms.CharField(required=False, max_length=500)


class PeopleQuery(forms.Form):
    """The People search: what to look for. It is POSTed; the URL carries a token instead."""

    q = forms.CharField(label="Search by email or name", required=False, max_length=254, strip=True)


class PeopleListQuery(LenientForm):
    """The People list's URL: the token of a remembered search, and the page."""

    search = forms.CharField(label="Search", required=False, max_length=32, initial="")
    page = forms.IntegerField(label="Page number", required=False, min_value=1, initial=1)


class PersonPageQuery(LenientForm):
    """A person's page URL: which page of their audit history."""

    history_page = forms.IntegerField(label="History page", required=False, min_value=1, initial=1)


class PersonGroupsForm(SubmissionKeyMixin):
    """Groups chosen for one action on one person (remove from, add to, copy)."""

    groups = forms.MultipleChoiceField(
        label="Groups",
        error_messages={
            "required": "Choose at least one group.",
            # The value is not repeated: it may be anything a client sent.
            "invalid_choice": "A group you chose is not one of the groups offered; reload the page.",
        },
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, group_choices: list[tuple[str, str]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["groups"].choices = list(group_choices)


class GroupFindForm(forms.Form):
    """Find groups by name to add a person to (the ticked ones are kept apart)."""

    add_q = forms.CharField(label="Find groups by name", required=False, max_length=200, strip=True)


class CopyAccessForm(forms.Form):
    """Whose groups to copy."""

    source = forms.CharField(
        label="Copy the groups of",
        max_length=254,
        strip=True,
        widget=forms.EmailInput(attrs={"placeholder": "colleague@example.com", "autocomplete": "off"}),
    )


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label="Name", max_length=100, help_text="What will use it: a script, a ticket system, an assistant."
    )
    scope = forms.ChoiceField(
        label="Scope",
        choices=ApiToken.Scope.choices,
        initial=ApiToken.Scope.READ,
        help_text="Never more than your role allows.",
    )
    expires_days = forms.IntegerField(
        label="Expires after (days)",
        required=False,
        min_value=1,
        max_value=366,
        initial=90,
        help_text="Empty: never (revoke it when it is no longer needed).",
    )


class OwnerForm(forms.Form):
    owner = forms.CharField(
        label="Owner to add (email or login)",
        max_length=320,
        help_text="Someone without an account yet is named by email; they own the group once they sign in.",
    )


class UndoForm(SubmissionKeyMixin):
    """Confirms the undo previewed; its key keeps a double click from undoing twice."""


class RenewForm(forms.Form):
    """Renew memberships (one or several ticked), or let them expire."""

    ids = forms.TypedMultipleChoiceField(coerce=int, label="Memberships", choices=())
    action = forms.ChoiceField(choices=[("renew", "Renew"), ("let_expire", "Let it expire")])
    ends_on = forms.DateField(
        label="New end date", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    reason = forms.CharField(
        label="Reason (for a renewal)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args, choices: list[int] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ids"].choices = [(pk, pk) for pk in choices]
        self.fields["ids"].error_messages["required"] = "Tick at least one membership."


class RenewalAskForm(forms.Form):
    ends_on = forms.DateField(label="Needed until", widget=forms.DateInput(attrs={"type": "date"}))
    justification = forms.CharField(
        label="Why is it still needed?", max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )


class GroupAboutForm(forms.Form):
    description = forms.CharField(
        label="What it gives access to",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    purpose = forms.CharField(
        label="Who should ask for it, and why",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class CatalogueQuery(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=200)


class CampaignForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200, help_text="For example: Q1 access review.")
    scope = forms.ChoiceField(
        label="Which groups",
        widget=forms.RadioSelect,
        choices=[
            ("chosen", "The groups chosen below"),
            ("privileged", "Every privileged group"),
            ("owned", "Every group with owners"),
        ],
        initial="privileged",
    )
    groups = forms.MultipleChoiceField(
        label="Groups", required=False, widget=forms.SelectMultiple(attrs={"size": 10}), choices=()
    )
    reviewer = forms.ModelChoiceField(
        label="Reviewer",
        queryset=None,
        required=False,
        empty_label="Each group's owners",
        help_text="Groups without owners and no reviewer named here are reviewed by whoever runs reviews.",
    )
    due_date = forms.DateField(label="Due", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, groups: list[tuple[str, str]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["groups"].choices = list(groups)
        self.fields["reviewer"].queryset = ReviewAssignForm().fields["reviewer"].queryset

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("scope") == "chosen" and not cleaned.get("groups"):
            self.add_error("groups", "Choose at least one group.")
        return cleaned
