"""Google's OAuth 2.0 endpoints: token (refresh grant), revoke, tokeninfo, userinfo (certs of the
Pub/Sub push tokens are a core endpoint, `/oauth2/v1/certs`).

Paths sit at the root of the sandbox's base URL, so `Credentials(token_uri=BASE + "/token")` works.
"""

from __future__ import annotations

from starlette.responses import Response

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

    def token(self, req: Request) -> Response:
        form = req.form()
        grant = form.get("grant_type")
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
