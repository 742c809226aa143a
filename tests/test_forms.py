"""Parsing what people type: resource ids with labels, and the Edit all rows."""

import re

import pytest
from django import forms

from groups_app.forms import PermissionSetFormSet, format_resources, parse_resources
from groups_app.segment import IamRole, Label, Resource


def test_resource_ids_with_labels_are_parsed_and_formatted_back():
    text = "ws1[environment=prod, region = eu], ws2;ws3\nws1"

    resources = parse_resources(text, "WORKSPACE")

    assert resources == [
        Resource("ws1", "WORKSPACE", (Label("environment", "prod"), Label("region", "eu"))),
        Resource("ws2", "WORKSPACE"),
        Resource("ws3", "WORKSPACE"),
    ]
    assert format_resources(resources) == "ws1[environment=prod, region=eu], ws2, ws3"
    assert parse_resources(format_resources(resources), "WORKSPACE") == resources


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("a/b", "SOURCE", "Not a resource id: a/b"),
        ("ws1[environment]", "WORKSPACE", "Labels are written key=value"),
        ("ws1[environment=prod", "WORKSPACE", "Not a resource id: ws1[environment=prod"),
        ("src1[a=b]", "SOURCE", "Only WORKSPACE resources carry labels."),
        (" , ", "SOURCE", "Enter at least one resource id."),
    ],
)
def test_what_is_not_a_resource_is_refused_with_the_reason(text, kind, message):
    with pytest.raises(forms.ValidationError, match=re.escape(message)):
        parse_resources(text, kind)


def test_a_blank_row_of_edit_all_is_ignored_not_required():
    roles = {"r1": IamRole("r1", "Reader")}
    data = {
        "rows-TOTAL_FORMS": "2",
        "rows-INITIAL_FORMS": "1",
        "rows-0-role": "r1",
        "rows-0-resource_type": "SOURCE",
        "rows-0-resource_ids": "src1",
        "rows-1-role": "",
        "rows-1-resource_type": "SOURCE",  # a browser submits the select's value even when untouched
        "rows-1-resource_ids": "",
    }

    rows = PermissionSetFormSet(data, form_kwargs={"roles": roles}, prefix="rows")

    assert rows.is_valid(), rows.errors
    assert [p.role_id for p in rows.permissions()] == ["r1"]
