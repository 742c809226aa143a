"""Parse and validate input. Forms never call the API."""

from __future__ import annotations

import re
import uuid

from django import forms
from django.conf import settings

from groups_app.emails import email_problems, split_emails
from groups_app.segment import RESOURCE_TYPES, Permission, Resource
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


class EmailListField(forms.CharField):
    """A textarea of emails separated by commas, semicolons, spaces or new lines."""

    widget = forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "autocomplete": "off"})

    def clean(self, value):
        text = super().clean(value)
        emails = split_emails(text)
        if not emails:
            raise forms.ValidationError("Enter at least one email.")
        if len(emails) > settings.MAX_EMAILS_PER_CHANGE:
            raise forms.ValidationError(
                f"At most {settings.MAX_EMAILS_PER_CHANGE} emails at once; you entered {len(emails)}."
            )
        problems = email_problems(emails)
        if problems:
            raise forms.ValidationError(problems)
        return emails


class AddMembersForm(SubmissionKeyMixin):
    emails = EmailListField(
        label="Emails to add",
        help_text="Separate with commas, spaces, semicolons or new lines. People who are not yet "
        "workspace users get an invite.",
    )


class RemoveMembersForm(SubmissionKeyMixin):
    emails = forms.CharField(widget=forms.MultipleHiddenInput, required=False)

    def __init__(self, *args, emails: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if emails is not None:
            self.initial["emails"] = emails

    def clean_emails(self):
        emails = split_emails(" ".join(self.data.getlist("emails"))) if self.is_bound else []
        if not emails:
            raise forms.ValidationError("Choose at least one member to remove.")
        return emails


class ReplaceMembersForm(SubmissionKeyMixin):
    emails = EmailListField(
        label="The complete list of members",
        help_text="Everyone not on this list is removed. You will see the changes before anything is sent.",
    )
    fingerprint = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)


class GroupNameForm(SubmissionKeyMixin):
    name = forms.CharField(label="Name", max_length=100, strip=True)


class DeleteGroupForm(SubmissionKeyMixin):
    confirm_name = forms.CharField(label="Type the group's name to confirm", max_length=200, strip=False)


def role_choices(roles: dict) -> list[tuple[str, str]]:
    return [
        ("", "Choose a role…"),
        *sorted(((r.id, r.name) for r in roles.values()), key=lambda c: c[1].casefold()),
    ]


class PermissionForm(forms.Form):
    """One grant: a role on one or more resources of one type."""

    role = forms.ChoiceField(label="Role")
    resource_type = forms.ChoiceField(label="Resource type", choices=[(t, t.title()) for t in RESOURCE_TYPES])
    resource_ids = forms.CharField(
        label="Resource ids",
        help_text="One or more ids, separated by commas or spaces.",
        max_length=2000,
    )

    def __init__(self, *args, roles: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = role_choices(roles)
        self.roles = roles

    def clean_resource_ids(self):
        ids = [part for part in re.split(r"[\s,;]+", self.cleaned_data["resource_ids"]) if part]
        bad = [value for value in ids if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value)]
        if not ids:
            raise forms.ValidationError("Enter at least one resource id.")
        if bad:
            raise forms.ValidationError(f"Not a resource id: {', '.join(bad)}")
        return list(dict.fromkeys(ids))

    def permission(self) -> Permission:
        role = self.roles[self.cleaned_data["role"]]
        resources = tuple(
            Resource(id=i, type=self.cleaned_data["resource_type"]) for i in self.cleaned_data["resource_ids"]
        )
        return Permission(role_id=role.id, role_name=role.name, resources=resources)


class AddPermissionForm(PermissionForm, SubmissionKeyMixin):
    pass


class PermissionRowForm(PermissionForm):
    """A row of the full permission set (the formset lets its blank extra rows stay blank)."""


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


def permission_rows(permissions) -> list[dict]:
    """Initial formset rows for a group's current permissions, one row per role and resource type."""
    rows = []
    for permission in permissions:
        by_type: dict[str, list[str]] = {}
        for resource in permission.resources:
            by_type.setdefault(resource.type, []).append(resource.id)
        for resource_type, ids in sorted(by_type.items()):
            rows.append(
                {"role": permission.role_id, "resource_type": resource_type, "resource_ids": ", ".join(ids)}
            )
    return rows


class AuditFilterForm(forms.Form):
    q = forms.CharField(label="Text", required=False, max_length=200)
    actor = forms.CharField(label="Actor", required=False, max_length=150)
    action = forms.ChoiceField(label="Action", required=False)
    group = forms.CharField(label="Group (id or name)", required=False, max_length=200)
    status = forms.ChoiceField(label="Outcome", required=False)
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        from groups_app.models import AuditEntry

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
    emails = forms.CharField(
        label="For whom",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
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

    def __init__(self, *args, groups=(), can_file_for_others: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["group"].choices = [("", "Choose a group…")] + [(g.id, g.name) for g in groups]
        if not can_file_for_others:
            del self.fields["emails"]

    def clean_emails(self):
        text = self.cleaned_data.get("emails", "")
        emails = split_emails(text)
        problems = email_problems(emails)
        if problems:
            raise forms.ValidationError(problems)
        return emails


class DenyForm(forms.Form):
    reason = forms.CharField(
        label="Reason (sent to the requester)", widget=forms.Textarea(attrs={"rows": 2}), max_length=2000
    )


class RequestQueueFilter(forms.Form):
    status = forms.ChoiceField(label="Status", required=False)
    group = forms.CharField(label="Group", required=False, max_length=200)
    requester = forms.CharField(label="Requester", required=False, max_length=150)
    older_than_days = forms.IntegerField(
        label="Older than (days)", required=False, min_value=0, max_value=3650
    )

    def __init__(self, *args, **kwargs):
        from groups_app.models import AccessRequest

        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [
            ("pending", "Pending"),
            ("open", "Open (pending or failed)"),
            ("", "Any"),
        ] + [choice for choice in AccessRequest.Status.choices if choice[0] != "pending"]


class ReviewDecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("keep", "Keep"), ("remove", "Remove"), ("", "Undecided")], required=False
    )
    note = forms.CharField(required=False, max_length=500)
