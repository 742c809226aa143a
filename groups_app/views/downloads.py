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
    """Stream `chunks` as an attachment, or explain that every export slot is taken (429).

    The filename may carry an id from upstream: anything but letters, digits, `.`, `_` and `-`
    becomes `_`, so a quote or a line break can never reach the header.
    """
    filename = UNSAFE_IN_FILENAME.sub("_", filename)
    try:
        body = within_export_slot(chunks)
    except ExportsBusy:
        context = {
            "error_title": "Other exports are running",
            "error_message": (
                "Other people's exports are being prepared right now. "
                f"Try again in {RETRY_AFTER_SECONDS} seconds."
            ),
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
