from django.urls import path, register_converter

from groups_app.views.access_requests import (
    request_bulk_view,
    request_decide_view,
    request_detail_view,
    request_list_view,
    request_new_view,
)
from groups_app.views.accounts import sign_in_failures_view
from groups_app.views.api_tokens import api_token_revoke_view, api_tokens_view
from groups_app.views.audit import (
    audit_entry_check_view,
    audit_entry_view,
    audit_export_view,
    audit_list_view,
)
from groups_app.views.campaigns import (
    campaign_detail_view,
    campaign_export_view,
    campaign_list_view,
    campaign_new_view,
    campaign_print_view,
)
from groups_app.views.catalogue import catalogue_view, group_about_view
from groups_app.views.changes import (
    group_create_view,
    group_delete_view,
    group_rename_view,
    members_add_view,
    members_remove_view,
    members_replace_view,
    permissions_add_view,
    permissions_edit_view,
    proposal_decide_view,
)
from groups_app.views.expiring import expiring_view, renewal_ask_view
from groups_app.views.groups import group_detail_view, group_list_view, group_member_search_view
from groups_app.views.inbox import inbox_view
from groups_app.views.jobs import job_cancel_view, job_download_view, job_list_view, job_view
from groups_app.views.owners import group_owner_remove_view, group_owners_view, owned_groups_view
from groups_app.views.people import (
    people_view,
    person_add_view,
    person_copy_view,
    person_remove_view,
    person_view,
)
from groups_app.views.reviews import (
    review_assign_view,
    review_complete_view,
    review_decide_view,
    review_detail_view,
    review_export_view,
    review_keep_page_view,
    review_list_view,
    review_retry_view,
    review_start_view,
)
from groups_app.views.undo import audit_undo_view
from groups_app.views.webhooks import webhook_deliveries_view


class SegmentIdConverter:
    """Segment identifiers: 1 to 64 letters and digits (what the mirror and audit log store);
    anything else is a 404 before a view runs."""

    regex = "[A-Za-z0-9]{1,64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class PersonKeyConverter:
    """The opaque key that stands for a person's address in People's URLs (services.people)."""

    regex = "[A-Za-z0-9_-]{22}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(SegmentIdConverter, "segment_id")
register_converter(PersonKeyConverter, "person_key")

app_name = "groups"

urlpatterns = [
    path("", group_list_view, name="list"),
    path("groups/new/", group_create_view, name="create"),
    path("groups/<segment_id:group_id>/", group_detail_view, name="detail"),
    path("groups/<segment_id:group_id>/rename/", group_rename_view, name="rename"),
    path("groups/<segment_id:group_id>/delete/", group_delete_view, name="delete"),
    path("groups/<segment_id:group_id>/members/search/", group_member_search_view, name="members-search"),
    path("groups/<segment_id:group_id>/members/add/", members_add_view, name="members-add"),
    path("groups/<segment_id:group_id>/members/remove/", members_remove_view, name="members-remove"),
    path("groups/<segment_id:group_id>/members/replace/", members_replace_view, name="members-replace"),
    path("groups/<segment_id:group_id>/permissions/add/", permissions_add_view, name="permissions-add"),
    path("groups/<segment_id:group_id>/permissions/edit/", permissions_edit_view, name="permissions-edit"),
    path(
        "groups/<segment_id:group_id>/proposals/<int:proposal_id>/<str:decision>/",
        proposal_decide_view,
        name="proposal-decide",
    ),
    path("groups/<segment_id:group_id>/owners/", group_owners_view, name="owners"),
    path(
        "groups/<segment_id:group_id>/owners/<int:owner_id>/remove/",
        group_owner_remove_view,
        name="owner-remove",
    ),
    path("owned/", owned_groups_view, name="owned"),
    path("catalogue/", catalogue_view, name="catalogue"),
    path("groups/<segment_id:group_id>/about/", group_about_view, name="catalogue-about"),
    path("expiring/", expiring_view, name="expiring"),
    path("expiring/<int:access_request_id>/renewal/", renewal_ask_view, name="renewal-ask"),
    path("groups/<segment_id:group_id>/reviews/start/", review_start_view, name="review-start"),
    path("inbox/", inbox_view, name="inbox"),
    path("requests/", request_list_view, name="requests"),
    path("requests/new/", request_new_view, name="request-new"),
    path("requests/decide/", request_bulk_view, name="requests-bulk"),
    path("requests/<int:access_request_id>/", request_detail_view, name="request"),
    path(
        "requests/<int:access_request_id>/<str:action>/",
        request_decide_view,
        name="request-decide",
    ),
    path("reviews/", review_list_view, name="reviews"),
    path("reviews/campaigns/", campaign_list_view, name="campaigns"),
    path("reviews/campaigns/new/", campaign_new_view, name="campaign-new"),
    path("reviews/campaigns/<int:campaign_id>/", campaign_detail_view, name="campaign"),
    path("reviews/campaigns/<int:campaign_id>/print/", campaign_print_view, name="campaign-print"),
    path("reviews/campaigns/<int:campaign_id>/evidence.csv", campaign_export_view, name="campaign-export"),
    path("reviews/<int:review_id>/", review_detail_view, name="review"),
    path("reviews/<int:review_id>/items/<int:item_id>/", review_decide_view, name="review-decide"),
    path("reviews/<int:review_id>/keep-page/", review_keep_page_view, name="review-keep-page"),
    path("reviews/<int:review_id>/complete/", review_complete_view, name="review-complete"),
    path("reviews/<int:review_id>/assign/", review_assign_view, name="review-assign"),
    path("reviews/<int:review_id>/retry/", review_retry_view, name="review-retry"),
    path("reviews/<int:review_id>/export.csv", review_export_view, name="review-export"),
    path("jobs/", job_list_view, name="jobs"),
    path("jobs/<int:job_id>/", job_view, name="job"),
    path("jobs/<int:job_id>/cancel/", job_cancel_view, name="job-cancel"),
    path("jobs/<int:job_id>/download/", job_download_view, name="job-download"),
    path("people/", people_view, name="people"),
    path("people/<person_key:key>/", person_view, name="person"),
    path("people/<person_key:key>/remove/", person_remove_view, name="person-remove"),
    path("people/<person_key:key>/add/", person_add_view, name="person-add"),
    path("people/<person_key:key>/copy/", person_copy_view, name="person-copy"),
    path("audit/", audit_list_view, name="audit"),
    path("audit/export.csv", audit_export_view, name="audit-export"),
    path("audit/<int:entry_id>/", audit_entry_view, name="audit-entry"),
    path("audit/<int:entry_id>/check/", audit_entry_check_view, name="audit-entry-check"),
    path("audit/<int:entry_id>/undo/", audit_undo_view, name="audit-undo"),
    path("audit/sign-ins/", sign_in_failures_view, name="sign-in-failures"),
    path("account/api-tokens/", api_tokens_view, name="api-tokens"),
    path("account/api-tokens/<int:token_id>/revoke/", api_token_revoke_view, name="api-token-revoke"),
    path("audit/webhooks/", webhook_deliveries_view, name="webhook-deliveries"),
]
