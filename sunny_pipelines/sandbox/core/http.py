"""The request the sandbox's handlers see, and response helpers (Starlette responses)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.responses import Response

from sunny_pipelines.sandbox.core.common import ApiError

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.core.accounts import AccessToken, User


@dataclass
class Request:
    method: str
    path: str  # percent-decoded path
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # case-insensitive (Starlette's Headers)
    body: bytes = b""
    user: User | None = None  # set for Google API routes once the bearer token is checked
    token: AccessToken | None = None
    pending_error: ApiError | None = None  # an injected fault to answer once its latency has passed

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


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(obj, ensure_ascii=False).encode()
    return Response(body, status, {"Content-Type": "application/json; charset=UTF-8", **(headers or {})})


def empty_response(status: int = 204) -> Response:
    return Response(b"", status)
