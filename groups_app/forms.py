"""Parse and validate input. Forms never call the API."""

from __future__ import annotations

from django import forms

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
