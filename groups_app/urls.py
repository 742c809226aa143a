from django.urls import path, register_converter

from groups_app.views.groups import group_detail_view, group_list_view


class SegmentIdConverter:
    """Segment identifiers: letters and digits only."""

    regex = "[A-Za-z0-9]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(SegmentIdConverter, "segment_id")

app_name = "groups"

urlpatterns = [
    path("", group_list_view, name="list"),
    path("groups/<segment_id:group_id>/", group_detail_view, name="detail"),
]
