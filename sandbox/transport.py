"""A `requests` transport adapter that serves the Segment client from the sandbox in-process.

The client keeps its own serialization, retries and error handling; only the socket is
replaced. Requests are dispatched to the resolved sandbox view directly, not through
`WSGIHandler.__call__`, whose request_started/request_finished signals would close the
database connection of the outer request (and of test transactions).
"""

from __future__ import annotations

import logging
import time
from io import BytesIO
from urllib.parse import urlsplit

import requests
from django.core.handlers.wsgi import WSGIRequest
from django.db import DatabaseError
from django.http import HttpResponse
from django.urls import Resolver404, resolve
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from sandbox import api

logger = logging.getLogger("sandbox.transport")

API_PREFIX = "/sandbox/api"


class SandboxAdapter(BaseAdapter):
    """Mount on `http://sandbox.internal/` to reach the sandbox API without a server."""

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: object = None,
        proxies: object = None,
    ) -> requests.Response:
        read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
        django_request = self._django_request(request, read_timeout)
        started = time.monotonic()
        response = self._dispatch(django_request)
        if read_timeout is not None and time.monotonic() - started > read_timeout:
            raise requests.ReadTimeout(
                f"The sandbox did not answer within {read_timeout} s.", request=request
            )
        return self._requests_response(request, response)

    def close(self) -> None:
        """Nothing to release: there is no connection."""

    @staticmethod
    def _django_request(request: requests.PreparedRequest, read_timeout: float | None) -> WSGIRequest:
        url = urlsplit(request.url or "")
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        environ = {
            "REQUEST_METHOD": request.method,
            "PATH_INFO": url.path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": url.query,
            "SERVER_NAME": url.hostname or "sandbox.internal",
            "SERVER_PORT": str(url.port or 80),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url.scheme or "http",
            "wsgi.input": BytesIO(body),
            "wsgi.errors": BytesIO(),
            "wsgi.multiprocess": False,
            "wsgi.multithread": True,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)),
            "sandbox.read_timeout": read_timeout,
        }
        for name, value in request.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key != "CONTENT_LENGTH":
                environ[f"HTTP_{key}"] = value
        return WSGIRequest(environ)

    @staticmethod
    def _dispatch(django_request: WSGIRequest) -> HttpResponse:
        path = django_request.path_info
        if not path.startswith(API_PREFIX + "/"):
            return api.unknown_path(django_request)
        try:
            match = resolve(path.removeprefix(API_PREFIX), urlconf="sandbox.urls")
        except Resolver404:
            return api.unknown_path(django_request)
        try:
            return match.func(django_request, *match.args, **match.kwargs)
        except DatabaseError:  # Group Admin's own database failed, not the API: never a 500 "from Segment"
            raise
        except Exception:  # a crash in the sandbox is a 500 to the client, as over HTTP
            logger.exception("Sandbox API crashed on %s %s", django_request.method, path)
            return api.error_response(500, [{"type": "server-error", "message": "Internal server error"}])

    def _requests_response(
        self, request: requests.PreparedRequest, response: HttpResponse
    ) -> requests.Response:
        result = requests.Response()
        result.status_code = response.status_code
        result.reason = response.reason_phrase
        result.headers = CaseInsensitiveDict(response.items())
        result._content = response.content
        result.encoding = response.charset or "utf-8"
        result.url = request.url or ""
        result.request = request
        result.connection = self
        return result
