from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()


@register.filter
def get_item(mapping: dict, key: str):
    """`mapping|get_item:key` — a dict lookup with a variable key."""
    return mapping.get(key) if mapping else None


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
