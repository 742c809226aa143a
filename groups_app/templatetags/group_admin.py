from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

from groups_app.models import AuditEntry
from groups_app.services.audit_details import observed_change

register = template.Library()


@register.filter
def get_item(mapping: dict, key: str):
    """`mapping|get_item:key` — a dict lookup with a variable key."""
    return mapping.get(key) if mapping else None


@register.filter
def person_key(keys: dict, email: str):
    """`person_keys|person_key:email` — the opaque key that stands for an address in URLs (the
    keys are by lower-cased address)."""
    return keys.get((email or "").strip().lower()) if keys else None


@register.filter
def when(moment: datetime | None, precision: str = "minutes"):
    """A moment in the viewer's time zone, with the zone shown: `2026-11-28 14:02 CET`.

    `|when:"seconds"` adds the seconds; `|when:"time"` shows only the time of day.
    """
    if not moment:
        return "—"
    local = timezone.localtime(moment)
    formats = {"minutes": "%Y-%m-%d %H:%M", "seconds": "%Y-%m-%d %H:%M:%S", "time": "%H:%M:%S"}
    text = f"{local.strftime(formats.get(precision, formats['minutes']))} {local.tzname()}"
    return format_html('<time datetime="{}">{}</time>', local.isoformat(), text)


@register.simple_tag(takes_context=True)
def resource_label(context, resource) -> str:
    """The name of a resource: from a grant's description, else from `resource_names` in the context."""
    names = context.get("resource_names")
    if isinstance(resource, dict):
        if resource.get("name"):
            return resource["name"]
        key = (resource.get("type"), resource.get("id"))
    else:
        key = (resource.type, resource.id)
    return (names or {}).get(key, "")


@register.filter
def getlist(data, key: str) -> list:
    """All values of `key` in submitted form data (a QueryDict); none for an unbound form."""
    return data.getlist(key) if hasattr(data, "getlist") else []


@register.filter
def audit_summary(entry: AuditEntry) -> str:
    """An entry's one-line summary; a change observed outside Group Admin is told from its
    details (roles granted and revoked by name, a privileged grant first)."""
    if entry.action == AuditEntry.Action.OBSERVED:
        return observed_change(entry, resource_names={}).summary
    return entry.summary
