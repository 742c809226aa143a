"""Expiring access: memberships ending in the next 30 days, renewed or let expire (one or in bulk),
and the signed-in person's own time-bound access, for which they can ask a renewal."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from groups_app.forms import RenewalAskForm, RenewForm
from groups_app.services.approvals.expiry import (
    EXPIRING_WITHIN_DAYS,
    access_let_expire,
    access_renew,
    access_renewal_ask,
    expiring_access,
    my_time_bound_access,
)
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.text import plural
from groups_app.views.submit import show_errors

TEMPLATE = "groups_app/expiring.html"


def _context(request: HttpRequest, *, form: RenewForm | None = None, ask_forms: dict | None = None) -> dict:
    rows = list(expiring_access(viewer=request.user))
    ask_forms = ask_forms or {}
    mine = [
        (r, ask_forms.get(r.pk) or RenewalAskForm(prefix=f"ask{r.pk}"))
        for r in my_time_bound_access(request.user)
    ]
    checked = {int(pk) for pk in form.data.getlist("ids") if pk.isdigit()} if form is not None else set()
    return {
        "rows": rows,
        "checked": checked,
        "form": form or RenewForm(choices=[r.pk for r in rows]),
        "mine": mine,
        "within_days": EXPIRING_WITHIN_DAYS,
        "nav_section": "expiring",
    }


@require_http_methods(["GET", "POST"])
@login_required
def expiring_view(request: HttpRequest) -> HttpResponse:
    """GET lists; POST renews (new date and reason) or lets expire the ticked memberships."""
    if request.method == "GET":
        return render(request, TEMPLATE, _context(request))
    visible = [r.pk for r in expiring_access(viewer=request.user)]
    form = RenewForm(request.POST, choices=visible)
    if form.is_valid():
        data = form.cleaned_data
        try:
            if data["action"] == "renew":
                result = access_renew(
                    actor=request.user,
                    access_request_ids=data["ids"],
                    ends_on=data["ends_on"],
                    reason=data["reason"],
                )
                verb = "Renewed"
            else:
                result = access_let_expire(actor=request.user, access_request_ids=data["ids"])
                verb = "Let expire"
        except InvalidInput as exc:
            show_errors(form, exc)
        else:
            if result.done:
                messages.success(request, f"{verb}: {plural(len(result.done), 'membership')}.")
            for access_request, reason in result.refused:
                messages.error(request, f"{access_request.email} in {access_request.group_name}: {reason}")
            return redirect("groups:expiring")
    return render(request, TEMPLATE, _context(request, form=form), status=422)


@require_POST
@login_required
def renewal_ask_view(request: HttpRequest, access_request_id: int) -> HttpResponse:
    """A member asks to keep their time-bound access longer: a request is filed."""
    form = RenewalAskForm(request.POST, prefix=f"ask{access_request_id}")
    if form.is_valid():
        try:
            filed = access_renewal_ask(
                actor=request.user,
                access_request_id=access_request_id,
                ends_on=form.cleaned_data["ends_on"],
                justification=form.cleaned_data["justification"],
            )
        except NotAllowed as exc:
            form.add_error(None, exc.message)
        except InvalidInput as exc:
            show_errors(form, exc, {"needed_until": "ends_on"})
        else:
            for access_request in filed.filed:
                messages.success(request, f"Asked to renew your access to {access_request.group_name}.")
                return redirect("groups:request", access_request_id=access_request.pk)
            for duplicate in filed.duplicates:
                messages.info(request, f"You already asked (#{duplicate.pk}).")
                return redirect("groups:request", access_request_id=duplicate.pk)
            return redirect("groups:expiring")
    return render(request, TEMPLATE, _context(request, ask_forms={access_request_id: form}), status=422)
