"""A typed client of Segment's Public API (IAM Groups and Roles).

Plain Python: no Django imports. One method per API operation; envelopes are
unwrapped and statuses mapped to typed errors in `_request()` only.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from urllib3.exceptions import NameResolutionError, NewConnectionError

from .deadline import time_left
from .errors import (
    AuthenticationFailed,
    DeadlineExceeded,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    SegmentError,
    Unavailable,
    ValidationFailed,
)
from .models import IamRole, NamedResource, Page, Permission, UserGroup, WorkspaceUser
from .observers import observe_call, observe_rate_limit_wait

__version__ = "1.0"

logger = logging.getLogger("groups_app.segment")

T = TypeVar("T")

ACCEPT = "application/vnd.segment.v1+json"
USER_AGENT = f"GroupAdmin/{__version__} (+internal dashboard) python-requests/{requests.__version__}"
ID_PATTERN = re.compile(r"^[A-Za-z0-9]+$")
ADD_BATCH_SIZE = 100
MAX_URL_LENGTH = 6 * 1024
# A read that met a server failure is sent again: any 5xx but those that would answer the same
# again (501 Not Implemented, 505 HTTP Version Not Supported). A 500 is as transient as a 503 here.
PERMANENT_SERVER_STATUSES = frozenset({501, 505})
READ_METHODS = frozenset({"GET", "HEAD"})
# Below this many seconds left in the caller's budget, a request is not worth sending.
MIN_USEFUL_TIME = 0.05
MAY_HAVE_APPLIED = " The change may or may not have been applied."


class _BearerAuth(requests.auth.AuthBase):
    """Adds the bearer token to each request while keeping it out of every repr."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "<bearer token redacted>"


def normalize_emails(emails: Iterable[str]) -> list[str]:
    """Trim, lower-case and de-duplicate emails, keeping their first-seen order."""
    seen: dict[str, None] = {}
    for raw in emails:
        cleaned = str(raw).strip().lower()
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)


def check_id(value: str, what: str = "user_group_id") -> str:
    """Return `value` if it is a Segment identifier (letters and digits), else raise ValueError."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ValueError(f"{what} must be letters and digits only, got {value!r}")
    return value


def iterate_pages[T](fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Every item of a cursor-paginated listing, `fetch(cursor)` returning each page.

    Raises:
        SegmentError: the API handed back a cursor it had already given (it would loop forever).
    """
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page = fetch(cursor)
        yield from page.items
        if not page.next:
            return
        if page.next in seen:
            raise SegmentError("The API returned a pagination cursor it had already given.")
        seen.add(page.next)
        cursor = page.next


class SegmentClient:
    """Client of the Public API's IAM Groups endpoints.

    Reads are retried on 429, on 5xx (but 501 and 505) and on connection failures; mutations are
    retried only on 429 (the API guarantees a 429 was not performed). Every wait and
    timeout fits in the caller's deadline (see `deadline.py`): a 429 whose wait would
    pass it raises `RateLimited` at once.

    `concurrent_requests` tells callers whether several calls may run at once from
    different threads (false for transports bound to the calling thread).
    """

    concurrent_requests = True

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float | tuple[float, float] = (3.05, 15),
        max_retries: int = 3,
        session: requests.Session | None = None,
        max_retry_wait: float = 30.0,
        page_size: int = 200,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.page_size = page_size
        self._sleep = sleep
        self._now = now
        self._auth = _BearerAuth(token)
        self.session = session or requests.Session()
        self.session.headers.update({"Accept": ACCEPT, "User-Agent": USER_AGENT})

    def __repr__(self) -> str:
        return f"SegmentClient(base_url={self.base_url!r})"

    # -- user groups ---------------------------------------------------------------

    def list_user_groups(self, *, count: int = 50, cursor: str | None = None) -> Page[UserGroup]:
        """One page of the workspace's user groups.

        Raises:
            SegmentError: any failure of the call (see errors.py for the subclasses).
        """
        data = self._request("GET", "/groups", params=self._pagination(count, cursor))
        return self._page(data, "userGroups", UserGroup.from_payload)

    def iter_user_groups(self) -> Iterator[UserGroup]:
        """Every user group, following cursors to the last page."""
        return iterate_pages(lambda cursor: self.list_user_groups(count=self.page_size, cursor=cursor))

    def get_user_group(self, user_group_id: str) -> UserGroup:
        """One user group with its permissions.

        Raises:
            NotFound: no such group.
        """
        data = self._request("GET", f"/groups/{check_id(user_group_id)}")
        return self._parse(data, "userGroup", UserGroup.from_payload)

    def create_user_group(self, name: str) -> UserGroup:
        """Create a user group.

        Raises:
            ValidationFailed: the name was refused (field `name`).
        """
        data = self._request("POST", "/groups", json={"name": name})
        return self._parse(data, "userGroup", UserGroup.from_payload)

    def update_user_group(self, user_group_id: str, name: str) -> UserGroup:
        """Rename a user group.

        Raises:
            NotFound, ValidationFailed.
        """
        data = self._request("PATCH", f"/groups/{check_id(user_group_id)}", json={"name": name})
        return self._parse(data, "userGroup", UserGroup.from_payload)

    def delete_user_group(self, user_group_id: str) -> None:
        """Delete a user group; its members lose the access it granted.

        Raises:
            NotFound.
        """
        self._request("DELETE", f"/groups/{check_id(user_group_id)}")

    # -- members and invites -------------------------------------------------------

    def list_users_from_user_group(
        self, user_group_id: str, *, count: int = 50, cursor: str | None = None
    ) -> Page[WorkspaceUser]:
        """One page of the workspace users in a group.

        Raises:
            NotFound: no such group.
        """
        data = self._request(
            "GET",
            f"/groups/{check_id(user_group_id)}/users",
            params=self._pagination(count, cursor),
        )
        return self._page(data, "users", WorkspaceUser.from_payload)

    def iter_users_from_user_group(self, user_group_id: str) -> Iterator[WorkspaceUser]:
        """Every workspace user in a group."""
        check_id(user_group_id)
        return iterate_pages(
            lambda cursor: self.list_users_from_user_group(user_group_id, count=self.page_size, cursor=cursor)
        )

    def list_invites_from_user_group(
        self, user_group_id: str, *, count: int = 50, cursor: str | None = None
    ) -> Page[str]:
        """One page of the emails invited to a group who are not yet workspace users.

        Raises:
            NotFound: no such group.
        """
        data = self._request(
            "GET",
            f"/groups/{check_id(user_group_id)}/invites",
            params=self._pagination(count, cursor),
        )
        return self._page(data, "emails", _email_from_payload)

    def iter_invites_from_user_group(self, user_group_id: str) -> Iterator[str]:
        """Every pending invite of a group."""
        check_id(user_group_id)
        return iterate_pages(
            lambda cursor: self.list_invites_from_user_group(
                user_group_id, count=self.page_size, cursor=cursor
            )
        )

    def add_users_to_user_group(self, user_group_id: str, emails: Iterable[str]) -> UserGroup:
        """Add emails to a group, at most 100 per request; unknown emails become invites.

        Raises:
            ValidationFailed, NotFound, ...: with `completed_emails` / `remaining_emails`
            set when an earlier batch was already applied.
        """
        path = f"/groups/{check_id(user_group_id)}/users"
        batches = _chunks(self._require_emails(emails), ADD_BATCH_SIZE)
        group: UserGroup | None = None
        for data in self._send_batches(
            batches, lambda batch: self._request("POST", path, json={"emails": batch})
        ):
            group = self._parse(data, "userGroup", UserGroup.from_payload)
        assert group is not None
        return group

    def remove_users_from_user_group(self, user_group_id: str, emails: Iterable[str]) -> None:
        """Remove emails (members or invites) from a group, in batches that keep URLs short.

        Raises:
            NotFound, ValidationFailed, ...: with `completed_emails` / `remaining_emails`
            set when an earlier batch was already applied.
        """
        path = f"/group/{check_id(user_group_id)}/users"
        batches = self._removal_batches(path, self._require_emails(emails))
        for _ in self._send_batches(
            batches,
            lambda batch: self._request(
                "DELETE", path, params={f"emails.{i}": email for i, email in enumerate(batch)}
            ),
        ):
            pass

    def replace_users_in_user_group(self, user_group_id: str, emails: Iterable[str]) -> UserGroup:
        """Set a group's members and invites to exactly `emails` (one request).

        Raises:
            NotFound, ValidationFailed.
        """
        path = f"/group/{check_id(user_group_id)}/users"
        data = self._request("PUT", path, json={"emails": normalize_emails(emails)})
        return self._parse(data, "userGroup", UserGroup.from_payload)

    # -- permissions and roles -----------------------------------------------------

    def add_permissions_to_user_group(
        self, user_group_id: str, permissions: Iterable[Permission]
    ) -> list[Permission]:
        """Grant more roles on resources to a group.

        Raises:
            NotFound, ValidationFailed.
        """
        return self._send_permissions("POST", user_group_id, permissions)

    def replace_permissions_for_user_group(
        self, user_group_id: str, permissions: Iterable[Permission]
    ) -> list[Permission]:
        """Set a group's permissions to exactly `permissions`.

        Raises:
            NotFound, ValidationFailed.
        """
        return self._send_permissions("PUT", user_group_id, permissions)

    def list_roles(self, *, count: int = 200, cursor: str | None = None) -> Page[IamRole]:
        """One page of the workspace's IAM roles."""
        data = self._request("GET", "/roles", params=self._pagination(count, cursor))
        return self._page(data, "roles", IamRole.from_payload)

    def iter_roles(self) -> Iterator[IamRole]:
        """Every IAM role."""
        return iterate_pages(lambda cursor: self.list_roles(count=self.page_size, cursor=cursor))

    # -- the resources permissions grant roles on ----------------------------------

    def get_workspace(self) -> NamedResource:
        """The workspace itself (the resource of WORKSPACE grants)."""
        data = self._request("GET", "/")
        return self._parse(
            data, "workspace", lambda w: NamedResource(str(w["id"]), "WORKSPACE", str(w["name"]))
        )

    def list_resources(
        self,
        resource_type: str,
        *,
        count: int = 200,
        cursor: str | None = None,
        function_type: str = "SOURCE",
    ) -> Page[NamedResource]:
        """One page of the workspace's sources, warehouses, spaces or functions (of `function_type`).

        Raises:
            ValueError: a type that has no listing (WORKSPACE: use get_workspace).
        """
        if resource_type not in _RESOURCE_LISTINGS:
            raise ValueError(f"{resource_type} resources have no listing")
        path, key, name_of = _RESOURCE_LISTINGS[resource_type]
        params = self._pagination(count, cursor)
        if resource_type == "FUNCTION":
            params["resourceType"] = function_type
        data = self._request("GET", path, params=params)
        return self._page(
            data, key, lambda item: NamedResource(str(item["id"]), resource_type, name_of(item))
        )

    def iter_resources(self, resource_type: str) -> Iterator[NamedResource]:
        """Every resource of a type (for FUNCTION, functions of every kind)."""
        if resource_type == "WORKSPACE":
            yield self.get_workspace()
            return
        kinds = FUNCTION_TYPES if resource_type == "FUNCTION" else ("",)
        for kind in kinds:
            yield from iterate_pages(
                lambda cursor, kind=kind: self.list_resources(
                    resource_type, count=self.page_size, cursor=cursor, function_type=kind or "SOURCE"
                )
            )

    # -- plumbing ------------------------------------------------------------------

    def _send_permissions(
        self, method: str, user_group_id: str, permissions: Iterable[Permission]
    ) -> list[Permission]:
        body = {"permissions": [permission.to_payload() for permission in permissions]}
        data = self._request(method, f"/groups/{check_id(user_group_id)}/permissions", json=body)
        return self._parse(data, "permissions", lambda items: [Permission.from_payload(p) for p in items])

    @staticmethod
    def _require_emails(emails: Iterable[str]) -> list[str]:
        cleaned = normalize_emails(emails)
        if not cleaned:
            raise ValueError("at least one email is required")
        return cleaned

    def _removal_batches(self, path: str, emails: list[str]) -> list[list[str]]:
        """Split emails so that each DELETE URL stays under MAX_URL_LENGTH."""
        budget = MAX_URL_LENGTH - len(self.base_url + path) - 1
        batches: list[list[str]] = []
        batch: list[str] = []
        used = 0
        for email in emails:
            cost = len(f"emails.{len(batch)}={quote(email, safe='')}&")
            if batch and used + cost > budget:
                batches.append(batch)
                batch, used = [], 0
                cost = len(f"emails.0={quote(email, safe='')}&")
            batch.append(email)
            used += cost
        if batch:
            batches.append(batch)
        return batches

    @staticmethod
    def _send_batches(
        batches: list[list[str]], send: Callable[[list[str]], dict[str, Any]]
    ) -> Iterator[dict[str, Any]]:
        """Send each batch in turn; on failure, record what was and was not applied."""
        completed: list[str] = []
        for index, batch in enumerate(batches):
            try:
                data = send(batch)
            except SegmentError as exc:
                exc.completed_emails = tuple(completed)
                exc.remaining_emails = tuple(email for rest in batches[index:] for email in rest)
                raise
            completed.extend(batch)
            yield data

    @staticmethod
    def _pagination(count: int, cursor: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"pagination.count": count}
        if cursor:
            params["pagination.cursor"] = cursor
        return params

    @staticmethod
    def _parse(data: dict[str, Any], key: str, build: Callable[[Any], T]) -> T:
        try:
            return build(data[key])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SegmentError(f"Unexpected response from Segment: bad or missing {key!r}.") from exc

    def _page(self, data: dict[str, Any], key: str, build: Callable[[Any], T]) -> Page[T]:
        items = self._parse(data, key, lambda items: tuple(build(item) for item in items))
        pagination = data.get("pagination") or {}
        if not isinstance(pagination, dict):
            raise SegmentError("Unexpected response from Segment: bad 'pagination'.")
        total = pagination.get("totalEntries")
        try:
            total_entries = int(total) if total is not None else None
        except (TypeError, ValueError) as exc:
            raise SegmentError("Unexpected response from Segment: bad 'totalEntries'.") from exc
        return Page(
            items=items,
            current=pagination.get("current") or None,
            next=pagination.get("next") or None,
            previous=pagination.get("previous") or None,
            total_entries=total_entries,
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send one API call with the retry rules, and return its `data` object."""
        url = self.base_url + path
        is_read = method in READ_METHODS
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            timeout = self._timeout_within_deadline(method, path)
            started = time.perf_counter()
            try:
                response = self.session.request(
                    method, url, params=params, json=json, auth=self._auth, timeout=timeout
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                elapsed_ms = (time.perf_counter() - started) * 1000
                kind = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
                observe_call(
                    method, path, "timeout" if kind == "timed out" else "connection_error", elapsed_ms / 1000
                )
                logger.warning("%s %s %s after %.0fms (attempt %d)", method, path, kind, elapsed_ms, attempt)
                delay = self._back_off(attempt, waited) if is_read and attempt <= self.max_retries else None
                if delay is not None:
                    waited += delay
                    continue
                if not is_read and _was_sent(exc):
                    raise OutcomeUnknown(
                        f"Segment did not answer: the request {kind}.{MAY_HAVE_APPLIED}"
                    ) from None
                raise Unavailable(f"Segment did not answer: the request {kind}.") from None
            elapsed_ms = (time.perf_counter() - started) * 1000
            status = response.status_code
            logger.info("%s %s %s in %.0fms (attempt %d)", method, path, status, elapsed_ms, attempt)
            observe_call(method, path, str(status), elapsed_ms / 1000)

            if status == 429:
                wait = self._rate_limit_wait(response)
                left = time_left()
                fits = left is None or wait + MIN_USEFUL_TIME < left
                if attempt <= self.max_retries and waited + wait <= self.max_retry_wait and fits:
                    observe_rate_limit_wait(method, path, wait)
                    self._sleep(wait)
                    waited += wait
                    continue
                retry_at = self._now() + timedelta(seconds=wait)
                what = "requests" if is_read else "changes"
                raise RateLimited(
                    f"Segment is rate-limiting {what}; try again at {retry_at:%H:%M:%S} UTC.",
                    retry_after=wait,
                    retry_at=retry_at,
                    is_read=is_read,
                    status=429,
                    errors=self._errors(response),
                )
            if is_read and _is_retryable_read_status(status) and attempt <= self.max_retries:
                delay = self._back_off(attempt, waited)
                if delay is not None:
                    waited += delay
                    continue
            return self._unwrap(response)

    def _timeout_within_deadline(self, method: str, path: str) -> float | tuple[float, float]:
        """The configured timeout, cut to what is left of the caller's deadline.

        Raises:
            DeadlineExceeded: too little time is left to send the request at all.
        """
        left = time_left()
        if left is None:
            return self.timeout
        if left < MIN_USEFUL_TIME:
            logger.warning("%s %s not sent: the time budget is spent", method, path)
            raise DeadlineExceeded("Segment did not answer in time; nothing more was sent.")
        if isinstance(self.timeout, tuple):
            return (min(self.timeout[0], left), min(self.timeout[1], left))
        return min(self.timeout, left)

    def _back_off(self, attempt: int, waited: float) -> float | None:
        """Sleep an exponential, jittered delay and return it; None if no retry fits the deadline."""
        delay = min(8.0, 0.25 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        delay = max(0.0, min(delay, self.max_retry_wait - waited))
        left = time_left()
        if left is not None and delay + MIN_USEFUL_TIME * 2 >= left:
            return None
        if delay:
            self._sleep(delay)
        return delay

    def _rate_limit_wait(self, response: requests.Response) -> float:
        """Seconds to wait before a 429'd request may be sent again."""
        for error in self._errors(response):
            ms = (error.get("data") or {}).get("msBeforeNext") if isinstance(error, dict) else None
            if isinstance(ms, int | float) and ms >= 0:
                return ms / 1000
        retry_after = response.headers.get("Retry-After")
        if retry_after:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                pass
        reset = response.headers.get("X-RateLimit-Reset")
        if reset:
            try:
                return max(0.0, (parsedate_to_datetime(reset) - self._now()).total_seconds())
            except (TypeError, ValueError):
                pass
        return 1.0

    @staticmethod
    def _errors(response: requests.Response) -> list[dict[str, Any]]:
        try:
            body = response.json()
        except ValueError:
            return []
        errors = body.get("errors") if isinstance(body, dict) else None
        return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []

    def _unwrap(self, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        if 200 <= status < 300:
            if status == 204 or not response.content:
                return {}
            try:
                body = response.json()
            except ValueError:
                raise SegmentError("Unexpected response from Segment: not JSON.", status=status) from None
            if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
                raise SegmentError("Unexpected response from Segment: no 'data' object.", status=status)
            return body["data"]

        errors = self._errors(response)
        detail = "; ".join(str(e.get("message")) for e in errors if e.get("message"))
        if status in (401, 403):
            error_class: type[SegmentError] = AuthenticationFailed
            message = "Segment rejected the API token; check SEGMENT_API_TOKEN and its scopes."
        elif status == 404:
            error_class, message = NotFound, "Segment could not find that resource."
        elif status in (400, 422):
            error_class, message = ValidationFailed, "Segment refused the input."
        elif status >= 500:
            error_class, message = Unavailable, "Segment is not responding."
            if response.request.method not in READ_METHODS:
                error_class, message = OutcomeUnknown, message + MAY_HAVE_APPLIED
        else:
            error_class, message = SegmentError, "Segment answered with an unexpected status."
        if detail:
            message = f"{message} {detail}"
        raise error_class(message, status=status, errors=errors)


FUNCTION_TYPES = ("SOURCE", "DESTINATION", "INSERT_DESTINATION", "INSERT_SOURCE")


def _warehouse_name(item: dict[str, Any]) -> str:
    """A warehouse is named in its settings; its metadata names only its kind (Snowflake, …)."""
    settings = item.get("settings") or {}
    metadata = item.get("metadata") or {}
    return str(settings.get("name") or metadata.get("name") or item["id"])


# For each resource type with a listing: its path, the key of its items, and the item's name.
_RESOURCE_LISTINGS: dict[str, tuple[str, str, Callable[[dict[str, Any]], str]]] = {
    "SOURCE": ("/sources", "sources", lambda item: str(item.get("name") or item["id"])),
    "WAREHOUSE": ("/warehouses", "warehouses", _warehouse_name),
    "SPACE": ("/spaces", "spaces", lambda item: str(item.get("name") or item["id"])),
    "FUNCTION": ("/functions", "functions", lambda item: str(item.get("displayName") or item["id"])),
}


def _is_retryable_read_status(status: int) -> bool:
    return 500 <= status < 600 and status not in PERMANENT_SERVER_STATUSES


def _was_sent(exc: requests.RequestException) -> bool:
    """Whether a failed request may have reached Segment (only a failed connect proves it did not)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    cause: BaseException | None = exc
    while cause is not None:
        reason = getattr(cause, "reason", None)
        if isinstance(cause, NewConnectionError | NameResolutionError) or isinstance(
            reason, NewConnectionError | NameResolutionError
        ):
            return False
        cause = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
    return True


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _email_from_payload(payload: Any) -> str:
    if not isinstance(payload, str):
        raise TypeError("invite emails must be strings")
    return payload
