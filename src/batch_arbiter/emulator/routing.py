"""HTTP-neutral plumbing shared by every emulated API: requests, responses, errors and the router.

Each emulated provider API (Anthropic now, Gemini later) is an `ApiModule`: it contributes routes and
decides how its callers authenticate and what its error bodies look like, because those differ per
provider while the server loop, fault injection and call log do not.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

_BASE62 = string.digits + string.ascii_letters


def random_id(length: int = 24) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(length))


_UNPARSED = object()


class HttpError(Exception):
    """Raised by handlers; the route's ApiModule renders it in that provider's error format.

    `error_type` may be left None so that the ApiModule picks its own name for the status.
    """

    def __init__(
        self,
        status: int,
        message: str,
        error_type: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.headers = list(headers)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    # Lower-cased names; a repeated header keeps its last value, which no emulated API relies on.
    headers: dict[str, str]
    raw_body: bytes
    request_id: str
    # Scheme+authority as the client addressed us, so URLs we hand out work from where the client is.
    base_url: str
    _parsed: Any = field(default=_UNPARSED, repr=False)
    # Fault injection: results for this many never-submitted requests are added to a results answer.
    foreign_results: int = 0

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def parsed_body(self) -> Any:
        """The JSON body, or None when the request had none or it was not JSON (the call log wants both)."""
        try:
            return self.json()
        except HttpError:
            return None

    def json(self) -> Any:
        # Parsed once: the handler and the call log both want it, and a batch body can be tens of MB.
        if self._parsed is _UNPARSED:
            if not self.raw_body:
                raise HttpError(400, "request body is required", "invalid_request_error")
            try:
                self._parsed = json.loads(self.raw_body)
            except ValueError as exc:
                raise HttpError(400, f"request body is not valid JSON: {exc}", "invalid_request_error") from exc
        return self._parsed


@dataclass
class Response:
    status: int
    body: bytes = b""
    # When set, the body is sent with chunked transfer encoding as these pieces are produced, so that
    # a 100k-line results file never has to exist as one string.
    chunks: Iterable[bytes] | None = None
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    # Fault injection: close the connection without answering, or after this many body lines; with
    # `cut_cleanly`, end the body properly after them instead, as if nothing were missing.
    drop: bool = False
    cut_after_lines: int | None = None
    cut_cleanly: bool = False


# Path parameters arrive as the route regex's named groups, already percent-decoded.
Handler = Callable[[Request, dict[str, str]], Response]


class ApiModule(Protocol):
    def routes(self) -> list[Route]: ...

    def authorize(self, request: Request) -> None:
        """Raise HttpError when the request lacks this API's credentials or required headers."""

    def error_response(self, request: Request, error: HttpError) -> Response: ...


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    name: str
    handler: Handler
    api: ApiModule

    @staticmethod
    def build(method: str, regex: str, name: str, handler: Handler, api: ApiModule) -> Route:
        return Route(method, re.compile(regex), name, handler, api)


@dataclass(frozen=True)
class Match:
    route: Route
    params: dict[str, str]


class Router:
    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._apis: list[ApiModule] = []

    def add_api(self, api: ApiModule) -> None:
        self._apis.append(api)
        self._routes.extend(api.routes())

    @property
    def fallback_api(self) -> ApiModule:
        """Renders errors for paths no route claims; the first API added is the server's main face."""
        return self._apis[0]

    def match(self, method: str, path: str) -> Match | list[str]:
        """The matching route, or the methods the path would accept (empty when the path is unknown)."""
        allowed: list[str] = []
        for route in self._routes:
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if route.method == method:
                return Match(route, {k: unquote(v) for k, v in found.groupdict().items()})
            allowed.append(route.method)
        return allowed
