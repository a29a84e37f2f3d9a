"""The one helper that builds a real Google API client acting as a sandbox user.

`google_client(sandbox, user, "calendar")` is the google-api-python-client service exactly as the
app builds it (bundled discovery document, httplib2 with google-auth credentials), pointed at the
sandbox. `sandbox` is a `SandboxServer` (anything with `base_url`) or a base URL; `user` is one
entry of `GET /sandbox/users` (`world.list_users()`): its access and refresh tokens are used, and a
401 refreshes through the sandbox's token endpoint, as in the app.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httplib2
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build

# API name -> (version, path under the base URL that `api_endpoint` must name). Gmail's method
# paths already start with `gmail/v1/`, so its endpoint is the plain base URL.
APIS: dict[str, tuple[str, str]] = {
    "calendar": ("v3", "/calendar/v3/"),
    "drive": ("v3", "/drive/v3/"),
    "gmail": ("v1", "/"),
}
# The Pub/Sub topic Gmail watches publish to in tests; the `receiver` fixture subscribes to it.
GMAIL_TOPIC = "projects/sunny-test/topics/gmail-push"
CLIENT_ID = "sunny-test-client"
CLIENT_SECRET = "sunny-test-secret"


def base_url_of(sandbox: Any) -> str:
    return (sandbox if isinstance(sandbox, str) else sandbox.base_url).rstrip("/")


def api_endpoint(sandbox: Any, api: str) -> str:
    if api not in APIS:
        raise ValueError(f"unknown Google API {api!r}; expected one of {sorted(APIS)}")
    return base_url_of(sandbox) + APIS[api][1]


def batch_uri(sandbox: Any) -> str:
    """Batch requests ignore `api_endpoint`: pass this to `new_batch_http_request(batch_uri=...)`."""
    return base_url_of(sandbox) + "/batch"


def user_credentials(
    sandbox: Any,
    user: dict[str, Any],
    token: str | None = "current",
    client_id: str = CLIENT_ID,
    client_secret: str = CLIENT_SECRET,
) -> Credentials:
    """The user's grant; `token="current"` uses their listed access token, None forces a refresh."""
    return Credentials(
        token=user["access_token"] if token == "current" else token,
        refresh_token=user["refresh_token"],
        token_uri=base_url_of(sandbox) + "/token",
        client_id=client_id,
        client_secret=client_secret,
    )


class PlainHttpUploads:
    """An httplib2-like object that sends `https://<sandbox host>/...` over plain HTTP.

    With `api_endpoint` overridden, googleapiclient sends media uploads to the discovery document's
    upload path on the endpoint's host but keeps the document's `https` scheme (it swaps only the
    host: google-api-python-client PR #1992), which a plain-HTTP sandbox cannot answer.
    """

    def __init__(self, http: Any, base_url: str) -> None:
        self._http = http
        self._https = "https://" + urlsplit(base_url).netloc + "/"

    def request(self, uri: str, *args: Any, **kwargs: Any) -> Any:
        if uri.startswith(self._https):
            uri = "http://" + uri[len("https://") :]
        return self._http.request(uri, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._http, name)


def google_client(
    sandbox: Any,
    user: dict[str, Any],
    api: str = "calendar",
    *,
    credentials: Credentials | None = None,
    timeout: float = 10,
) -> Any:
    """A real `googleapiclient` service for `api` ("calendar", "drive", "gmail") acting as `user`."""
    endpoint = api_endpoint(sandbox, api)
    raw = httplib2.Http(timeout=timeout)
    # 308 means "resume incomplete" to resumable uploads, not a redirect (as googleapiclient.build_http sets).
    raw.redirect_codes = raw.redirect_codes - {308}
    http = AuthorizedHttp(credentials or user_credentials(sandbox, user), http=raw)
    return build(
        api,
        APIS[api][0],
        http=PlainHttpUploads(http, base_url_of(sandbox)),
        static_discovery=True,
        client_options={"api_endpoint": endpoint},
    )


def calendar_client(sandbox: Any, user: dict[str, Any], credentials: Credentials | None = None) -> Any:
    """The Calendar v3 client acting as `user`."""
    return google_client(sandbox, user, "calendar", credentials=credentials)
