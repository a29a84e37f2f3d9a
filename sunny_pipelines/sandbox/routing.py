"""A tiny request/response model and router for the sandbox's HTTP server (no framework needed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from sunny_pipelines.sandbox.common import ApiError

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.world import AccessToken, User


@dataclass
class Request:
    method: str
    path: str  # percent-decoded path
    segments: list[str]  # percent-decoded path segments (so `ada%40example.com` is one segment)
    query: dict[str, list[str]]
    headers: Message
    body: bytes = b""
    user: User | None = None  # set for Google API routes once the bearer token is checked
    token: AccessToken | None = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        try:
            value = json.loads(self.body)
        except ValueError:
            raise ApiError(400, "parseError", "Parse Error") from None
        if not isinstance(value, dict):
            raise ApiError(400, "parseError", "Parse Error")
        return value

    def form(self) -> dict[str, str]:
        """Query parameters overlaid with a form-encoded (or JSON) body, first value of each."""
        out = {k: v[0] for k, v in self.query.items() if v}
        ctype = self.headers.get("Content-Type", "")
        if self.body:
            if "json" in ctype:
                out.update({k: str(v) for k, v in self.json().items() if v is not None})
            else:
                parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
                out.update({k: v[0] for k, v in parsed.items() if v})
        return out

    @property
    def me(self) -> User:
        """The authenticated user of a Google API route."""
        assert self.user is not None
        return self.user

    @property
    def scopes(self) -> frozenset[str]:
        return self.token.scopes if self.token is not None else frozenset()

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(obj, ensure_ascii=False).encode()
    return Response(status, body, {"Content-Type": "application/json; charset=UTF-8", **(headers or {})})


def empty_response(status: int = 204) -> Response:
    return Response(status)


Handler = Callable[..., Response]


@dataclass
class Route:
    method: str
    pattern: list[str]  # segments; `{name}` captures one segment
    handler: Handler
    api: str | None = None  # Google API name: bearer auth, fault injection and request counting apply
    scopes: frozenset[str] | None = None  # any one of these is required (Google API routes)

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.pattern):
            return None
        params = {}
        for want, got in zip(self.pattern, segments, strict=True):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    return None
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def extend(self, routes: list[Route]) -> None:
        self.routes.extend(routes)

    def match(self, method: str, segments: list[str]) -> tuple[Route | None, dict[str, str], bool]:
        """(route, params, path_exists): path_exists tells a 405 from a 404 when no route matches."""
        path_exists = False
        for route in self.routes:
            params = route.match(segments)
            if params is None:
                continue
            if route.method == method:
                return route, params, True
            path_exists = True
        return None, {}, path_exists


def route(
    method: str, path: str, handler: Handler, api: str | None = None, scopes: frozenset[str] | None = None
) -> Route:
    return Route(method.upper(), path.strip("/").split("/"), handler, api, scopes)
