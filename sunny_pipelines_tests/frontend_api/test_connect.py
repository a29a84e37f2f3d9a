"""Connecting a Google account end to end: our start endpoint, the sandbox's consent screen over
HTTP, our callback; then the users sensor adds the partitions and every service's first sync
runs. Forged, replayed and expired states, and Google's refusals, store nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import requests
from sqlalchemy import select, update

from sunny_pipelines.db.models import GoogleConnection, OAuthState, User
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.frontend_api import REQUIRED_SCOPES, FrontendSettings, create_app
from sunny_pipelines.frontend_api.oauth import code_challenge, missing_scopes, state_is_expired
from sunny_pipelines.partitions import TRIGGER_TAG
from sunny_pipelines_tests.calendar import helpers as calendar
from sunny_pipelines_tests.drive import helpers as drive
from sunny_pipelines_tests.frontend_api.conftest import connect, consent, grants, query_of, states
from sunny_pipelines_tests.gmail import mailbox as gmail
from sunny_pipelines_tests.runs import evaluate_sensor, execute, materialized


def test_connect_flow_then_partitions_and_every_first_sync(api, sandbox, database, cipher, resources):
    users = sandbox.world.list_users()
    for user in users:
        flow = consent(api, user["email"])
        asked = flow.consent_params
        assert flow.consent_url.startswith(sandbox.base_url + "/o/oauth2/v2/auth?")
        assert (asked["access_type"], asked["prompt"], asked["include_granted_scopes"]) == (
            "offline",
            "consent",
            "true",
        )
        assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
        assert set(asked["scope"].split()) == set(REQUIRED_SCOPES)
        assert asked["login_hint"] == user["email"] and len(asked["state"]) >= 32
        assert asked["redirect_uri"] == "http://testserver/oauth/google/callback"
        assert flow.callback_params["state"] == asked["state"]

        answer = api.get(flow.callback_url)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["status"], body["user_id"], body["google_email"], body["new_user"]) == (
            "connected",
            user["id"],  # a new user's id is Google's account id
            user["email"],
            True,
        )
        assert set(REQUIRED_SCOPES) <= set(body["scopes"])

    stored = grants(database)
    with database.begin() as conn:
        people = {row.id: row for row in conn.execute(select(User.__table__))}
    for user in users:
        grant, person = stored[user["id"]], people[user["id"]]
        current = sandbox.world.get_user(user["email"])
        # The grant Google issued at this consent, encrypted at rest.
        assert cipher.decrypt(grant.refresh_token) == current.refresh_token != user["refresh_token"]
        assert current.refresh_token not in grant.refresh_token
        assert cipher.decrypt(grant.access_token).startswith("ya29.")
        assert grant.status == "active" and set(REQUIRED_SCOPES) <= set(grant.scopes)
        assert grant.expires_at > datetime.now(UTC) + timedelta(minutes=50)
        assert (person.status, person.email, person.timezone) == ("active", user["email"], user["timezone"])
    assert [s.error for s in states(database)] == [None] * len(users)
    assert {s.user_id for s in states(database)} == {u["id"] for u in users}
    assert all(s.used_at is not None for s in states(database))

    # The users sensor adds the partitions and requests every service's first sync.
    defs = build_defs(resources)
    keys = [u["id"] for u in users]
    with dg.instance_for_test() as instance:
        tick = evaluate_sensor(defs, "connected_users_sensor", instance, resources)
        [added] = tick.dynamic_partitions_requests
        assert list(added.partition_keys) == keys
        instance.add_dynamic_partitions("users", list(added.partition_keys))
        requests = tick.run_requests
        assert {r.job_name for r in requests} == {"calendar_sync", "drive_sync", "email_sync"}
        assert {r.tags[TRIGGER_TAG] for r in requests} == {"first_sync"}
        for request in requests:
            assert execute(defs, instance, request).success, request.job_name
        for asset in ("calendar_events", "drive_files", "emails"):
            assert materialized(instance, asset) == set(keys), asset
    for user in users:
        assert calendar.stored_rows(database, user["id"]) == calendar.truth_rows(sandbox, user)
        assert drive.stored_rows(database, user["id"]) == drive.truth_rows(sandbox, user)
        assert gmail.stored_rows(database, user["id"]) == gmail.truth_rows(sandbox, user, days=30)


def test_forged_state_is_refused_and_nothing_stored(api, sandbox, database):
    flow = consent(api, sandbox.world.list_users()[0]["email"])
    forged = flow.callback_url.replace(flow.callback_params["state"], "forged-" + "x" * 40)
    answer = api.get(forged)
    assert answer.status_code == 400
    assert answer.json()["detail"]["error"] == "unknown_state"
    assert api.get("/oauth/google/callback", params={"code": "4/abc"}).json()["detail"]["error"] == (
        "missing_state"
    )
    assert grants(database) == {}
    # The real state is still good: refusing a forgery does not burn the user's flow.
    assert api.get(flow.callback_url).status_code == 200


def test_a_replayed_state_is_refused_after_success_and_after_failure(api, sandbox, database, cipher):
    first, second = sandbox.world.list_users()[:2]
    done = consent(api, first["email"])
    assert api.get(done.callback_url).status_code == 200
    stored = grants(database)[first["id"]]
    replay = api.get(done.callback_url)
    assert (replay.status_code, replay.json()["detail"]["error"]) == (400, "state_already_used")
    assert grants(database)[first["id"]].refresh_token == stored.refresh_token

    # A state whose callback failed (here: Google's error) cannot be replayed with a good code.
    flow = consent(api, second["email"])
    state = flow.callback_params["state"]
    refused = api.get("/oauth/google/callback", params={"state": state, "error": "access_denied"})
    assert (refused.status_code, refused.json()["detail"]["error"]) == (400, "google_error")
    again = api.get(flow.callback_url)
    assert (again.status_code, again.json()["detail"]["error"]) == (400, "state_already_used")
    assert set(grants(database)) == {first["id"]}
    recorded = {s.user_id: s.error for s in states(database)}
    assert recorded == {first["id"]: None, None: "google_error: Google answered error=access_denied"}


def test_google_refusals_and_expired_states_store_nothing(api, sandbox, database):
    # Nobody to consent: Google (the sandbox) sends the browser back with error=access_denied.
    flow = consent(api, "stranger@example.com")
    assert flow.callback_params["error"] == "access_denied"
    answer = api.get(flow.callback_url)
    assert (answer.status_code, answer.json()["detail"]["error"]) == (400, "google_error")

    # An intercepted code is useless without the PKCE verifier, and the attempt burns it: the
    # token endpoint then refuses it to our callback too.
    user = sandbox.world.list_users()[0]
    flow = consent(api, user["email"])
    params = flow.callback_params
    stolen = requests.post(
        sandbox.base_url + "/token",
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "client_id": "sunny-local",
            "redirect_uri": flow.consent_params["redirect_uri"],
            "code_verifier": "guessed-" + "x" * 40,
        },
        timeout=5,
    )
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
    answer = api.get("/oauth/google/callback", params={"state": params["state"], "code": params["code"]})
    assert (answer.status_code, answer.json()["detail"]["error"]) == (400, "token_exchange_failed")
    assert "invalid_grant" in answer.json()["detail"]["message"]

    # A flow older than the state lifetime.
    flow = consent(api, user["email"])
    with database.begin() as conn:
        conn.execute(update(OAuthState).where(OAuthState.used_at.is_(None)).values(
            created_at=datetime.now(UTC) - timedelta(minutes=11)
        ))  # fmt: skip
    answer = api.get(flow.callback_url)
    assert (answer.status_code, answer.json()["detail"]["error"]) == (400, "state_expired")
    assert api.get(flow.callback_url).json()["detail"]["error"] == "state_already_used"

    assert grants(database) == {}
    with database.begin() as conn:
        assert conn.execute(select(User.id)).all() == []
    errors = sorted(s.error.split(":")[0] for s in states(database))
    assert errors == ["google_error", "state_expired", "token_exchange_failed"]


def test_reconnecting_reactivates_the_same_user_and_keeps_their_account(
    api, sandbox, database, cipher, connected_users
):
    user = connected_users[0]
    with database.begin() as conn:
        conn.execute(
            update(User).where(User.id == user["id"]).values(email="ada@sunny.test", timezone="Asia/Tokyo")
        )
        conn.execute(
            update(GoogleConnection)
            .where(GoogleConnection.user_id == user["id"])
            .values(status="needs_reauth", last_error="invalid_grant: Token has been expired or revoked.")
        )
    answer = connect(api, user["email"])
    assert answer.status_code == 200, answer.text
    assert (answer.json()["user_id"], answer.json()["new_user"]) == (user["id"], False)
    grant = grants(database)[user["id"]]
    assert (grant.status, grant.last_error, grant.google_email) == ("active", None, user["email"])
    assert cipher.decrypt(grant.refresh_token) == sandbox.world.get_user(user["email"]).refresh_token
    with database.begin() as conn:
        person = conn.execute(select(User.__table__).where(User.id == user["id"])).one()
    assert (person.email, person.timezone, person.status) == ("ada@sunny.test", "Asia/Tokyo", "active")


def test_the_callback_can_hand_the_browser_back_to_the_frontend(settings, sandbox):
    from dataclasses import replace

    from starlette.testclient import TestClient

    app = create_app(replace(settings, frontend_url="https://app.sunny.test/settings?tab=google"))
    with TestClient(app, follow_redirects=False) as client:
        answer = connect(client, sandbox.world.list_users()[0]["email"])
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("https://app.sunny.test/settings?tab=google&")
    assert query_of(answer.headers["location"]) == {
        "tab": "google",
        "google": "connected",
        "user_id": "u0001",
    }


def test_pure_parts():
    # RFC 7636, appendix B.
    assert code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    assert missing_scopes(REQUIRED_SCOPES, REQUIRED_SCOPES[:2]) == list(REQUIRED_SCOPES[2:])
    created = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    assert not state_is_expired(created, 600, created + timedelta(seconds=600))
    assert state_is_expired(created, 600, created + timedelta(seconds=601))
    assert FrontendSettings(sandbox_url="disabled").authorization_url.startswith(
        "https://accounts.google.com/"
    )
    assert FrontendSettings(sandbox_url="http://127.0.0.1:9/").token_url == "http://127.0.0.1:9/token"
    assert "secret" not in repr(FrontendSettings(google_client_secret="secret", frontend_api_key="secret"))
