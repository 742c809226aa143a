"""Review campaigns: start one over many groups, follow its progress, export its evidence."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from groups_app.forms import CampaignForm
from groups_app.models import ReviewCampaign
from groups_app.roles import RUN_REVIEWS, VIEW
from groups_app.rules import book
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.groups import group_choices
from groups_app.services.reviews import campaign_csv_rows, campaign_list, campaign_progress, campaign_start
from groups_app.views.downloads import csv_download
from groups_app.views.submit import show_errors


@require_GET
@permission_required(VIEW, raise_exception=True)
def campaign_list_view(request: HttpRequest) -> HttpResponse:
    context = {
        "campaigns": campaign_list(),
        "can_start": book.may_act(request.user, RUN_REVIEWS),
        "nav_section": "reviews",
    }
    return render(request, "groups_app/review_campaigns.html", context)


@require_http_methods(["GET", "POST"])
def campaign_new_view(request: HttpRequest) -> HttpResponse:
    """Administrators start a campaign (refusals audited by the service)."""
    if request.method == "GET" and not book.may_act(request.user, RUN_REVIEWS):
        raise PermissionDenied("Your role does not allow running reviews.")
    form = CampaignForm(request.POST or None, groups=group_choices())
    if form.is_valid():
        data = form.cleaned_data
        try:
            campaign = campaign_start(
                actor=request.user,
                name=data["name"],
                scope=data["scope"],
                due_date=data["due_date"],
                group_ids=data["groups"],
                reviewer=data["reviewer"],
            )
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from None
        except InvalidInput as exc:
            show_errors(form, exc)
        else:
            return redirect("groups:campaign", campaign_id=campaign.pk)
    context = {"form": form, "nav_section": "reviews"}
    return render(request, "groups_app/review_campaign_new.html", context, status=422 if form.errors else 200)


@require_GET
@permission_required(VIEW, raise_exception=True)
@vary_on_headers("HX-Request", "HX-Target")
def campaign_detail_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Progress per group, overdue and totals; refreshes itself while reviews are opening."""
    campaign = get_object_or_404(ReviewCampaign, pk=campaign_id)
    template = "groups_app/review_campaign.html"
    if request.htmx and request.htmx.target == "campaign-progress":
        template += "#campaign-progress"
    return render(request, template, {"progress": campaign_progress(campaign), "nav_section": "reviews"})


@require_GET
@permission_required(VIEW, raise_exception=True)
def campaign_print_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The evidence as a printable page: every group, its reviewer and each decision."""
    campaign = get_object_or_404(ReviewCampaign, pk=campaign_id)
    reviews = campaign.reviews.order_by("group_name", "id").prefetch_related("items")
    context = {
        "progress": campaign_progress(campaign),
        "reviews": reviews,
        "printed_at": timezone.now(),
        "nav_section": "reviews",
    }
    return render(request, "groups_app/review_campaign_print.html", context)


@require_GET
@permission_required(VIEW, raise_exception=True)
def campaign_export_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The evidence as one CSV: every entry of every review of the campaign."""
    campaign = get_object_or_404(ReviewCampaign, pk=campaign_id)
    if campaign.status == ReviewCampaign.Status.OPENING:
        return redirect("groups:campaign", campaign_id=campaign.pk)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    return csv_download(
        request, campaign_csv_rows(campaign), f"group-admin-campaign-{campaign.pk}-{stamp}.csv"
    )
