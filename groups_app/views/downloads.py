"""CSV downloads: streamed, and answered with a page when too many exports are running."""

from __future__ import annotations

import re
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse

from groups_app.services.exports import ExportsBusy, within_export_slot

RETRY_AFTER_SECONDS = 30
UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


def csv_download(request: HttpRequest, chunks: Iterator[str], filename: str) -> HttpResponse:
    """Stream `chunks` as an attachment, or explain why it cannot start now (429): the account
    has an export running already, or every export slot is taken.

    The filename may carry an id from upstream: anything but letters, digits, `.`, `_` and `-`
    becomes `_`, so a quote or a line break can never reach the header.
    """
    filename = UNSAFE_IN_FILENAME.sub("_", filename)
    try:
        body = within_export_slot(chunks, owner=str(request.user.pk or ""))
    except ExportsBusy as exc:
        context = {
            "error_title": "Your export is still running" if exc.is_own else "Other exports are running",
            "error_message": f"{exc.message} Try again in {RETRY_AFTER_SECONDS} seconds.",
            "retry_url": request.get_full_path(),
            "groups_url": reverse("groups:list"),
        }
        response = render(request, "groups_app/error.html", context, status=429)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return StreamingHttpResponse(
        body,
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
