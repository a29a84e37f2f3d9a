"""Google's OAuth 2.0 endpoints: the authorization endpoint (consent given at once for the user
`login_hint` names), token (authorization_code with PKCE, and refresh grants), revoke, tokeninfo,
userinfo (certs of the Pub/Sub push tokens are a core endpoint, `/oauth2/v1/certs`).

Paths sit at the root of the sandbox's base URL, so `Credentials(token_uri=BASE + "/token")` works,
and `BASE + "/o/oauth2/v2/auth"` stands for `https://accounts.google.com/o/oauth2/v2/auth`.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.responses import RedirectResponse, Response

from sunny_pipelines.sandbox.core.accounts import OAuthError
from sunny_pipelines.sandbox.core.http import Request, json_response
from sunny_pipelines.sandbox.core.plugin import ApiRoute, ServicePlugin, register_service, route

_NO_STORE = {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate", "Pragma": "no-cache"}


@register_service
class GoogleOAuth(ServicePlugin):
    """Grants live in the core (`core.accounts`), shared by every Google API; this plugin serves them."""

    name = "google_oauth"
    # The token endpoint answers a 5xx to the next `count` refresh requests (`status`, default 503).
    fault_kinds = ("token_server_error",)
    direct_fault_kinds = ("token_server_error",)

    def inject_fault(
        self, kind: str, email: str | None, count: int, latency_ms: int, status: int | None
    ) -> None:
        if kind != "token_server_error":
            raise ValueError(f"the {self.name} service has no fault {kind!r}")
        self.world.accounts.queue_token_faults(email, count, status)

    def clear_faults(self) -> None:
        self.world.accounts.clear_token_faults()

    def routes(self) -> list[ApiRoute]:
        return [
            route("GET", "/o/oauth2/v2/auth", self.authorize),
            route("GET", "/o/oauth2/auth", self.authorize),
            route("POST", "/token", self.token),
            route("POST", "/revoke", self.revoke),
            route("GET", "/revoke", self.revoke),
            route("GET", "/tokeninfo", self.tokeninfo),
            route("POST", "/tokeninfo", self.tokeninfo),
            route("GET", "/oauth2/v3/tokeninfo", self.tokeninfo),
            route("GET", "/oauth2/v3/userinfo", self.userinfo),
            route("GET", "/oauth2/v2/userinfo", self.userinfo),
            # Google's signing certificates; the core's push signer signs the Pub/Sub push tokens.
            route("GET", "/oauth2/v1/certs", lambda req: json_response(self.world.signer.certs())),
        ]

    def authorize(self, req: Request) -> Response:
        """Google's consent screen, answered at once: a 302 back to ``redirect_uri`` with a code
        (or, as Google does, with ``error=...``). A request that names no usable client or
        redirect URI gets an error page instead: nothing may be sent to an unchecked address."""
        client_id = req.arg("client_id")
        redirect_uri = req.arg("redirect_uri")
        if not client_id:
            raise OAuthError("invalid_client", "The OAuth client was not found.", status=401)
        parts = urlsplit(redirect_uri or "")
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            raise OAuthError("invalid_request", "Invalid parameter value for redirect_uri")
        state = req.arg("state")
        try:
            response_type = req.arg("response_type")
            if response_type != "code":
                raise OAuthError("unsupported_response_type", f"Invalid response_type: {response_type or ''}")
            access_type = req.arg("access_type") or "online"
            if access_type not in ("online", "offline"):
                raise OAuthError("invalid_request", f"Invalid access_type: {access_type}")
            code = self.world.accounts.authorize(
                client_id=client_id,
                redirect_uri=redirect_uri or "",
                scopes=(req.arg("scope") or "").split(),
                login_hint=req.arg("login_hint"),
                offline=access_type == "offline",
                include_granted_scopes=(req.arg("include_granted_scopes") or "").lower() == "true",
                code_challenge=req.arg("code_challenge"),
                code_challenge_method=req.arg("code_challenge_method"),
            )
        except OAuthError as exc:
            return _redirect(redirect_uri or "", {**exc.body(), "state": state})
        return _redirect(
            redirect_uri or "",
            {"state": state, "code": code.code, "scope": " ".join(code.scopes), "authuser": "0"},
        )

    def token(self, req: Request) -> Response:
        form = req.form()
        grant = form.get("grant_type")
        if grant == "authorization_code":
            code = form.get("code")
            if not code:
                raise OAuthError("invalid_request", "Missing required parameter: code")
            client_id = form.get("client_id") or _basic_auth_client_id(req)
            if not client_id:
                raise OAuthError("invalid_client", "The OAuth client was not found.", status=401)
            body = self.world.accounts.exchange_code(
                code, client_id, form.get("redirect_uri"), form.get("code_verifier")
            )
            return json_response(body, headers=_NO_STORE)
        if grant != "refresh_token":
            raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant or ''}")
        refresh_token = form.get("refresh_token")
        if not refresh_token:
            raise OAuthError("invalid_request", "Missing required parameter: refresh_token")
        body = self.world.accounts.refresh_access_token(refresh_token, form.get("client_id"))
        return json_response(body, headers=_NO_STORE)

    def revoke(self, req: Request) -> Response:
        token = req.form().get("token")
        if not token or not self.world.accounts.revoke_token(token):
            raise OAuthError("invalid_token", "Token expired or revoked")
        return json_response({})

    def tokeninfo(self, req: Request) -> Response:
        form = req.form()
        token = form.get("access_token") or req.bearer
        info = self.world.accounts.token_info(token) if token else None
        if info is None:
            raise OAuthError("invalid_token", "Invalid Value")
        return json_response(info, headers=_NO_STORE)

    def userinfo(self, req: Request) -> Response:
        auth = self.world.accounts.authenticate(req.bearer)
        if auth is None:
            return json_response(
                {"error": "invalid_request", "error_description": "Invalid Credentials"},
                status=401,
                headers={
                    "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
                },
            )
        user, _ = auth
        given, _, family = user.name.partition(" ")
        return json_response(
            {
                "sub": user.id,
                "name": user.name,
                "given_name": given,
                "family_name": family,
                "email": user.email,
                "email_verified": True,
                "picture": f"https://lh3.googleusercontent.com/a/sandbox-{user.id}",
            }
        )


def _redirect(redirect_uri: str, params: dict[str, str | None]) -> Response:
    """A 302 to ``redirect_uri`` with ``params`` added to its query (None values left out)."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(key, value) for key, value in params.items() if value is not None]
    return RedirectResponse(urlunsplit(parts._replace(query=urlencode(query))), status_code=302)


def _basic_auth_client_id(req: Request) -> str | None:
    """The client id of `Authorization: Basic base64(id:secret)` (client_secret_basic)."""
    scheme, _, value = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None
