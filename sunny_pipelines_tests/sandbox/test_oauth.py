"""OAuth endpoints and bearer authentication, driven by the real google-auth library."""

from __future__ import annotations

import httplib2
import pytest
import requests
from google.auth.exceptions import RefreshError
from google_auth_httplib2 import Request as HttplibRequest

from sunny_pipelines.sandbox.server import SandboxServer
from sunny_pipelines_tests.google_clients import calendar_client, user_credentials


def _refresh_request() -> HttplibRequest:
    return HttplibRequest(httplib2.Http(timeout=10))


def test_users_have_ids_emails_and_working_tokens(sandbox: SandboxServer) -> None:
    users = sandbox.world.list_users()
    assert [u["id"] for u in users] == ["u0001", "u0002", "u0003"]
    assert users[0]["email"] == "ada.lovelace@example.com"
    assert users[0]["timezone"] == "Europe/London"
    assert all(u["expires_in"] > 3000 and u["status"] == "active" for u in users)
    assert "https://www.googleapis.com/auth/calendar" in users[0]["scopes"]
    # The HTTP view is the same list, so a separate process can learn the users.
    over_http = requests.get(sandbox.base_url + "/sandbox/users", timeout=5).json()
    assert [(u["id"], u["access_token"]) for u in over_http] == [(u["id"], u["access_token"]) for u in users]
    assert requests.get(sandbox.base_url + "/healthz", timeout=5).status_code == 200


def test_refresh_issues_a_new_token_and_keeps_the_old_one_valid(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    creds = user_credentials(sandbox, user, token=None)
    creds.refresh(_refresh_request())
    assert creds.token and creds.token != user["access_token"]
    assert creds.expiry is not None and creds.valid
    info = requests.get(
        sandbox.base_url + "/tokeninfo", params={"access_token": creds.token}, timeout=5
    ).json()
    assert info["aud"] == "sunny-test-client"
    assert info["email"] == user["email"] and info["sub"] == user["id"]
    assert 3500 < info["expires_in"] <= 3600
    assert "https://www.googleapis.com/auth/calendar" in info["scope"].split()
    old = requests.get(
        sandbox.base_url + "/tokeninfo", params={"access_token": user["access_token"]}, timeout=5
    )
    assert old.status_code == 200


def test_unknown_or_revoked_refresh_token_is_invalid_grant(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[1]
    resp = requests.post(
        sandbox.base_url + "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "1//nope",
            "client_id": "c",
            "client_secret": "s",
        },
        timeout=5,
    )
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }

    sandbox.world.inject_fault("revoke", user_email=user["email"])
    creds = user_credentials(sandbox, user)
    with pytest.raises(RefreshError) as info:
        creds.refresh(_refresh_request())
    assert info.value.retryable is False
    # Its access tokens died with the grant: the API answers 401, google-auth refreshes, refresh fails.
    service = calendar_client(sandbox, user, user_credentials(sandbox, user))
    with pytest.raises(RefreshError):
        service.calendarList().list().execute()
    # Other users are untouched.
    other = sandbox.world.list_users()[0]
    assert calendar_client(sandbox, other).calendarList().list().execute()["items"]


def test_401_triggers_one_refresh_and_a_retry(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    creds = user_credentials(sandbox, user)
    service = calendar_client(sandbox, user, creds)
    service.events().list(calendarId="primary", maxResults=1).execute()
    sandbox.world.inject_fault("expire_access_token", user_email=user["email"])
    sandbox.world.reset_counters()
    page = service.events().list(calendarId="primary", maxResults=1).execute()
    assert page["items"]
    assert creds.token != user["access_token"]
    # One 401, then the retry with the refreshed token.
    assert sandbox.world.request_count(user["email"], "/calendar/v3/calendars/primary/events") == 1
    assert sandbox.world.request_count(path_prefix="/calendar/v3/") == 2


def test_missing_or_bad_bearer_token_gets_google_401_body(sandbox: SandboxServer) -> None:
    for headers in ({}, {"Authorization": "Bearer ya29.unknown"}):
        resp = requests.get(
            sandbox.base_url + "/calendar/v3/users/me/calendarList", headers=headers, timeout=5
        )
        assert resp.status_code == 401
        error = resp.json()["error"]
        assert error["code"] == 401 and error["status"] == "UNAUTHENTICATED"
        assert error["message"] == "Request had invalid authentication credentials."
        assert error["errors"][0]["reason"] == "authError"


def test_revoke_endpoint_revokes_the_grant(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[2]
    assert requests.post(sandbox.base_url + "/revoke", params={"token": "nope"}, timeout=5).status_code == 400
    resp = requests.post(sandbox.base_url + "/revoke", data={"token": user["refresh_token"]}, timeout=5)
    assert resp.status_code == 200
    bad = requests.get(
        sandbox.base_url + "/tokeninfo", params={"access_token": user["access_token"]}, timeout=5
    )
    assert bad.status_code == 400
    assert bad.json() == {"error": "invalid_token", "error_description": "Invalid Value"}
    with pytest.raises(RefreshError):
        user_credentials(sandbox, user).refresh(_refresh_request())
    listed = next(u for u in sandbox.world.list_users() if u["id"] == user["id"])
    assert listed["status"] == "revoked"
    # Consenting again gives a new, working grant.
    fresh = sandbox.world.reconnect_user(user["email"])
    assert fresh["refresh_token"] != user["refresh_token"]
    creds = user_credentials(sandbox, fresh, token=None)
    creds.refresh(_refresh_request())
    assert creds.valid


def test_access_tokens_expire_with_the_sandbox_clock(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    sandbox.world.advance_clock(3700)
    resp = requests.get(
        sandbox.base_url + "/calendar/v3/users/me/calendarList",
        headers={"Authorization": f"Bearer {user['access_token']}"},
        timeout=5,
    )
    assert resp.status_code == 401
    # list_users always hands out a currently valid token.
    fresh = sandbox.world.list_users()[0]
    assert fresh["access_token"] != user["access_token"]
    assert calendar_client(sandbox, fresh).calendarList().list().execute()["items"]
