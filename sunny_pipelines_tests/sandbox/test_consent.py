"""Google's authorization endpoint and the authorization_code grant in the sandbox, over HTTP:
consent for the user `login_hint` names, PKCE (S256), single-use codes bound to their client and
redirect URI, offline access and incremental scopes."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import requests

from sunny_pipelines.sandbox.server import SandboxServer
from sunny_pipelines_tests.google_clients import calendar_client

REDIRECT_URI = "https://app.sunny.test/oauth/google/callback"
CLIENT_ID = "sunny-test-client"
CALENDAR = "https://www.googleapis.com/auth/calendar"
DRIVE = "https://www.googleapis.com/auth/drive"
EMAIL = "https://www.googleapis.com/auth/userinfo.email"


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def consent(sandbox: SandboxServer, login_hint: str | None, scopes: list[str], verifier: str, **extra: str):
    """The browser at Google's consent screen: the redirect it is sent back with, and its query."""
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": " ".join(scopes),
        "state": "st-123",
        "access_type": "offline",
        "prompt": "consent",
        "include_granted_scopes": "true",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        **({"login_hint": login_hint} if login_hint else {}),
        **extra,
    }
    response = requests.get(
        sandbox.base_url + "/o/oauth2/v2/auth", params=params, allow_redirects=False, timeout=5
    )
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(sandbox: SandboxServer, code: str, verifier: str | None, **overrides: str) -> requests.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": CLIENT_ID,
        "client_secret": "sunny-test-secret",
        "redirect_uri": REDIRECT_URI,
        **({"code_verifier": verifier} if verifier else {}),
        **overrides,
    }
    return requests.post(sandbox.base_url + "/token", data=data, timeout=5)


def test_consent_code_exchange_gives_a_working_offline_grant(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    verifier = secrets.token_urlsafe(64)
    answer = consent(sandbox, user["email"].upper(), [EMAIL, CALENDAR], verifier)
    assert answer["state"] == "st-123" and answer["code"].startswith("4/")

    response = exchange(sandbox, answer["code"], verifier)
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"] == "Bearer" and 3500 <= token["expires_in"] <= 3600
    assert token["refresh_token"] and token["refresh_token"] != user["refresh_token"]
    # include_granted_scopes: the grant in force (the seeded one) is kept and extended.
    assert {EMAIL, CALENDAR, DRIVE} <= set(token["scope"].split())
    info = requests.get(
        sandbox.base_url + "/oauth2/v3/userinfo",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=5,
    ).json()
    assert (info["sub"], info["email"]) == (user["id"], user["email"])
    # The new refresh token works with the real client library; the one it replaced does not.
    fresh = {**user, "access_token": "expired", "refresh_token": token["refresh_token"]}
    assert calendar_client(sandbox, fresh).calendarList().list().execute()["items"]
    old = exchange(sandbox, "x", None, grant_type="refresh_token", refresh_token=user["refresh_token"])
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"

    # The code is single use.
    again = exchange(sandbox, answer["code"], verifier)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_scopes_accumulate_only_with_include_granted_scopes(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[1]
    sandbox.world.inject_fault("revoke", user_email=user["email"])  # no grant in force any more
    verifier = secrets.token_urlsafe(64)
    first = exchange(sandbox, consent(sandbox, user["email"], [EMAIL], verifier)["code"], verifier).json()
    assert first["scope"].split() == [EMAIL]
    second = consent(sandbox, user["email"], [CALENDAR], verifier)
    assert set(second["scope"].split()) == {EMAIL, CALENDAR}
    token = exchange(sandbox, second["code"], verifier).json()
    assert set(token["scope"].split()) == {EMAIL, CALENDAR}
    alone = consent(sandbox, user["email"], [DRIVE], verifier, include_granted_scopes="false")
    assert exchange(sandbox, alone["code"], verifier).json()["scope"].split() == [DRIVE]


def test_codes_are_bound_to_verifier_client_and_redirect_uri(sandbox: SandboxServer) -> None:
    email = sandbox.world.list_users()[0]["email"]
    verifier = secrets.token_urlsafe(64)

    def code() -> str:
        return consent(sandbox, email, [CALENDAR], verifier)["code"]

    for verifier_sent, overrides, error in [
        (secrets.token_urlsafe(64), {}, "invalid_grant"),  # another verifier
        (None, {}, "invalid_grant"),  # none at all
        (verifier, {"client_id": "someone-else"}, "invalid_grant"),
        (verifier, {"redirect_uri": "https://evil.test/cb"}, "redirect_uri_mismatch"),
    ]:
        response = exchange(sandbox, code(), verifier_sent, **overrides)
        assert (response.status_code, response.json()["error"]) == (400, error)
    unknown = exchange(sandbox, "4/sbx-never-issued", verifier)
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_grant")
    # A code outlives neither its lifetime...
    late = code()
    sandbox.world.advance_clock(601)
    assert exchange(sandbox, late, verifier).json()["error"] == "invalid_grant"
    # ...nor a failed attempt (a verifier cannot be guessed by trying).
    tried = code()
    assert exchange(sandbox, tried, "x" * 43).status_code == 400
    assert exchange(sandbox, tried, verifier).json()["error"] == "invalid_grant"


def test_consent_errors_go_back_to_the_client_or_stay_on_google(sandbox: SandboxServer) -> None:
    verifier = secrets.token_urlsafe(64)
    denied = consent(sandbox, "nobody@example.com", [CALENDAR], verifier)
    assert (denied["error"], denied["state"]) == ("access_denied", "st-123") and "code" not in denied
    assert consent(sandbox, None, [CALENDAR], verifier)["error"] == "access_denied"
    email = sandbox.world.list_users()[0]["email"]
    assert consent(sandbox, email, ["https://evil.test/scope"], verifier)["error"] == "invalid_scope"
    assert consent(sandbox, email, [CALENDAR], verifier, response_type="token")["error"] == (
        "unsupported_response_type"
    )
    assert consent(sandbox, email, [CALENDAR], verifier, code_challenge_method="S512")["error"] == (
        "invalid_request"
    )
    # No client, or no usable redirect URI: an error page, nothing sent anywhere.
    base = {"response_type": "code", "scope": CALENDAR, "login_hint": email}
    for params, status in [
        ({**base, "redirect_uri": REDIRECT_URI}, 401),
        ({**base, "client_id": CLIENT_ID, "redirect_uri": "javascript:alert(1)"}, 400),
    ]:
        for path in ("/o/oauth2/v2/auth", "/o/oauth2/auth"):
            page = requests.get(sandbox.base_url + path, params=params, allow_redirects=False, timeout=5)
            assert page.status_code == status and "Location" not in page.headers
