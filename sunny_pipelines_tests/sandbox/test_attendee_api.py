"""The sandbox's Attendee emulator over HTTP: auth, the bots API, the lifecycle on the sandbox clock,
transcripts, signed webhooks and faults. Every request the tests send and every response the
sandbox gives is checked against Attendee's OpenAPI document (`attendee-openapi.yml`)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import requests
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.templating.responses.exceptions import ResponseNotFound

from sunny_pipelines.sandbox.server import SandboxServer
from sunny_pipelines.webhooks.auth import AuthFailure, verify_attendee_signature
from sunny_pipelines_tests.sandbox.helpers import Receiver, attendee_openapi

KEY = "sunny-local-attendee-key"
MEET = "https://meet.google.com/abc-defg-hij"


class Attendee:
    """A thin Attendee client that validates each request and response against the OpenAPI doc.

    Responses whose status the document does not list (401, 409, 429, 5xx) carry no schema there;
    they are counted in `unlisted` and checked by the tests themselves.
    """

    def __init__(self, base_url: str, key: str = KEY) -> None:
        self.openapi = attendee_openapi(base_url)
        self.base = base_url
        self.key = key
        self.session = requests.Session()
        self.validated = 0
        self.unlisted: list[int] = []

    def call(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        params: Any = None,
        key: str | None = None,
        validate_request: bool = True,
        timeout: float = 10,
    ) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        key = self.key if key is None else key
        if key:  # "" sends no Authorization header at all
            headers["Authorization"] = f"Token {key}"
        req = requests.Request(
            method, self.base + path, json=json_body, params=params, headers=headers
        ).prepare()
        if validate_request:
            self.openapi.validate_request(RequestsOpenAPIRequest(req))
        resp = self.session.send(req, timeout=timeout)
        try:
            self.openapi.validate_response(RequestsOpenAPIRequest(req), RequestsOpenAPIResponse(resp))
            self.validated += 1
        except ResponseNotFound:
            self.unlisted.append(resp.status_code)
        return resp

    def create(self, **body: Any) -> requests.Response:
        body.setdefault("meeting_url", MEET)
        body.setdefault("bot_name", "Sunny")
        return self.call("POST", "/api/v1/bots", body)

    def get(self, bot_id: str) -> dict[str, Any]:
        resp = self.call("GET", f"/api/v1/bots/{bot_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()


@pytest.fixture
def api(sandbox: SandboxServer) -> Attendee:
    return Attendee(sandbox.base_url)


def iso_in(sandbox: SandboxServer, seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sandbox.world.now() + seconds))


def verify(received: dict[str, str], secret: str) -> dict[str, Any]:
    """The payload of a received webhook, after checking its signature as the product does."""
    import base64

    payload = json.loads(received["_body"])
    verify_attendee_signature(payload, received.get("X-Webhook-Signature"), base64.b64decode(secret))
    return payload


# -- auth ---------------------------------------------------------------------------------------------


def test_a_wrong_or_missing_token_is_401_and_the_key_is_configurable(sandbox: SandboxServer, api: Attendee):
    wrong = api.call("GET", "/api/v1/bots", key="nope")
    assert wrong.status_code == 401 and wrong.json() == {"detail": "Invalid token."}
    missing = api.call("GET", "/api/v1/bots", key="", validate_request=False)
    assert missing.status_code == 401 and "detail" in missing.json()
    bearer = requests.get(
        f"{sandbox.base_url}/api/v1/bots", headers={"Authorization": f"Bearer {KEY}"}, timeout=5
    )
    assert bearer.status_code == 401
    assert api.call("GET", "/api/v1/bots").status_code == 200

    sandbox.world.attendee_api_key = "another-key"
    assert api.call("GET", "/api/v1/bots").status_code == 401
    assert api.call("GET", "/api/v1/bots", key="another-key").status_code == 200
    assert sandbox.world.attendee_bots() == []


# -- create, list, get, patch, delete -----------------------------------------------------------------


def test_create_list_by_dedup_key_get_patch_and_delete_a_scheduled_bot(sandbox: SandboxServer, api: Attendee):
    join_at = iso_in(sandbox, 3600)
    created = api.create(join_at=join_at, deduplication_key="meeting-1", metadata={"user_id": "u-1"})
    assert created.status_code == 201, created.text
    bot = created.json()
    assert bot["id"].startswith("bot_") and bot["state"] == "scheduled" and bot["events"] == []
    assert bot["deduplication_key"] == "meeting-1" and bot["metadata"] == {"user_id": "u-1"}
    assert bot["transcription_state"] == bot["recording_state"] == "not_started"
    api.create(deduplication_key="other", join_at=iso_in(sandbox, 7200))

    listed = api.call("GET", "/api/v1/bots", params={"deduplication_key": "meeting-1"}).json()
    assert [b["id"] for b in listed["results"]] == [bot["id"]] and listed["next"] is None
    assert len(api.call("GET", "/api/v1/bots").json()["results"]) == 2
    assert api.call("GET", "/api/v1/bots", params={"states": ["ended"]}).json()["results"] == []
    assert api.get(bot["id"]) == bot

    later = iso_in(sandbox, 5400)
    patched = api.call(
        "PATCH", f"/api/v1/bots/{bot['id']}", {"join_at": later, "metadata": {"user_id": "u-2"}}
    )
    assert patched.status_code == 200
    assert patched.json()["join_at"].startswith(later[:19]) and patched.json()["metadata"] == {
        "user_id": "u-2"
    }

    assert api.call("DELETE", f"/api/v1/bots/{bot['id']}").status_code == 200
    assert api.call("GET", f"/api/v1/bots/{bot['id']}").status_code == 404
    assert api.call("GET", f"/api/v1/bots/{bot['id']}").json() == {"error": "Bot not found"}
    truth = {b["id"]: b for b in sandbox.world.attendee_bots()}
    assert truth[bot["id"]]["deleted"] is True and truth[bot["id"]]["deduplication_key"] == "meeting-1"
    # The key is free again once its bot is gone.
    assert api.create(deduplication_key="meeting-1", join_at=later).status_code == 201
    assert api.unlisted == []


def test_patch_join_at_and_delete_only_while_scheduled(sandbox: SandboxServer, api: Attendee):
    bot = api.create(deduplication_key="now").json()
    assert bot["state"] == "joining"  # no join_at: it joins at once
    assert [e["type"] for e in bot["events"]] == ["join_requested"]
    patch = api.call("PATCH", f"/api/v1/bots/{bot['id']}", {"join_at": iso_in(sandbox, 600)})
    assert patch.status_code == 400 and "scheduled" in patch.json()["error"]
    # metadata can change at any time
    assert api.call("PATCH", f"/api/v1/bots/{bot['id']}", {"metadata": {"a": "b"}}).status_code == 200
    delete = api.call("DELETE", f"/api/v1/bots/{bot['id']}")
    assert delete.status_code == 400 and "scheduled" in delete.json()["error"]
    assert api.call("GET", "/api/v1/bots/bot_doesnotexist").status_code == 404
    assert api.call("POST", "/api/v1/bots/bot_doesnotexist/leave").status_code == 404


def test_a_live_bots_deduplication_key_cannot_be_reused(sandbox: SandboxServer, api: Attendee):
    first = api.create(deduplication_key="dup", join_at=iso_in(sandbox, 600)).json()
    again = api.create(deduplication_key="dup", join_at=iso_in(sandbox, 600))
    # Attendee answers a key in use with 400 {"error": "Deduplication key already in use. ..."}.
    assert again.status_code == 400 and again.json()["error"].startswith("Deduplication key already in use")
    assert len(sandbox.world.attendee_bots()) == 1
    # Once the bot has ended, the key is free.
    sandbox.world.advance_clock(600 + 5)
    sandbox.world.attendee_end_meeting(first["id"])
    sandbox.world.advance_clock(20)
    assert api.get(first["id"])["state"] == "ended"
    assert api.create(deduplication_key="dup").status_code == 201


def test_invalid_create_bodies_are_400_with_field_errors(api: Attendee):
    resp = api.call("POST", "/api/v1/bots", {"bot_name": "x"}, validate_request=False)
    assert resp.status_code == 400 and resp.json() == {"meeting_url": ["This field is required."]}
    resp = api.call(
        "POST",
        "/api/v1/bots",
        {"meeting_url": MEET, "bot_name": "x", "join_at": "soon"},
        validate_request=False,
    )
    assert resp.status_code == 400 and "join_at" in resp.json()


def test_pagination_follows_the_next_cursor(sandbox: SandboxServer, api: Attendee):
    ids = [
        api.create(deduplication_key=f"k{i}", join_at=iso_in(sandbox, 3600)).json()["id"] for i in range(25)
    ]
    first = api.call("GET", "/api/v1/bots").json()
    assert len(first["results"]) == 20 and first["next"]
    cursor = requests.utils.urlparse(first["next"]).query.split("cursor=")[1]
    second = api.call("GET", "/api/v1/bots", params={"cursor": requests.utils.unquote(cursor)}).json()
    assert second["next"] is None
    assert [b["id"] for b in first["results"] + second["results"]] == ids[::-1]


# -- the lifecycle -------------------------------------------------------------------------------------


def test_a_scheduled_bot_goes_through_the_meeting_on_the_sandbox_clock(sandbox: SandboxServer, api: Attendee):
    world = sandbox.world
    bot = api.create(
        join_at=iso_in(sandbox, 600), deduplication_key="life", metadata={"sandbox_meeting_seconds": 300}
    ).json()
    seen = [bot["state"]]
    for step in (301, 299, 5, 150, 150, 2, 10):
        world.advance_clock(step)
        seen.append(api.get(bot["id"])["state"])
    assert seen == [
        "scheduled",
        "staged",
        "joining",
        "joined_recording",
        "joined_recording",
        "leaving",
        "post_processing",
        "ended",
    ]
    final = api.get(bot["id"])
    assert final["transcription_state"] == final["recording_state"] == "complete"
    assert [e["type"] for e in final["events"]] == [
        "staged",
        "join_requested",
        "bot_joined_meeting",
        "leave_requested",
        "bot_left_meeting",
        "post_processing_completed",
    ]
    transcript = api.call("GET", f"/api/v1/bots/{bot['id']}/transcript").json()
    assert len(transcript) >= 5
    assert {u["speaker_name"] for u in transcript} >= {"Avery Chen", "Jordan Patel"}
    assert all(u["transcription"]["transcript"] for u in transcript)
    assert [u["timestamp_ms"] for u in transcript] == sorted(u["timestamp_ms"] for u in transcript)
    assert all(u["timestamp_ms"] + u["duration_ms"] <= 300_000 for u in transcript)
    # Deterministic: the same bot always has the same transcript.
    assert api.call("GET", f"/api/v1/bots/{bot['id']}/transcript").json() == transcript


def test_the_background_ticker_moves_bots_without_requests(sandbox: SandboxServer, api: Attendee):
    bot = api.create(deduplication_key="tick").json()
    sandbox.world.clock.advance(10)  # the clock alone, no hook: the ticker notices within a second
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if sandbox.world.attendee_bot(bot["id"])["state"] == "joined_recording":
            break
        time.sleep(0.1)
    assert sandbox.world.attendee_bot(bot["id"])["state"] == "joined_recording"


def test_leave_then_delete_data(sandbox: SandboxServer, api: Attendee):
    bot = api.create(deduplication_key="leave").json()
    assert api.call("POST", f"/api/v1/bots/{bot['id']}/delete_data").status_code == 400
    sandbox.world.advance_clock(200)
    left = api.call("POST", f"/api/v1/bots/{bot['id']}/leave")
    assert left.status_code == 200 and left.json()["state"] == "leaving"
    assert left.json()["events"][-1] == {**left.json()["events"][-1], "type": "leave_requested"}
    assert api.call("POST", f"/api/v1/bots/{bot['id']}/leave").status_code == 400
    sandbox.world.advance_clock(15)
    assert api.get(bot["id"])["state"] == "ended"
    transcript = api.call("GET", f"/api/v1/bots/{bot['id']}/transcript").json()
    assert 1 <= len(transcript) <= 5  # about 195 s of recording

    deleted = api.call("POST", f"/api/v1/bots/{bot['id']}/delete_data")
    assert deleted.status_code == 200 and deleted.json()["state"] == "data_deleted"
    assert api.call("GET", f"/api/v1/bots/{bot['id']}/transcript").json() == []
    assert sandbox.world.attendee_bot(bot["id"])["data_deleted"] is True


# -- webhooks -----------------------------------------------------------------------------------------


def test_state_changes_and_transcript_updates_are_signed_webhooks(
    sandbox: SandboxServer, api: Attendee, receiver: Receiver
):
    world = sandbox.world
    world.attendee_subscribe(receiver.url)
    bot = api.create(
        deduplication_key="hooks", metadata={"user_id": "42", "sandbox_meeting_seconds": 120}
    ).json()
    world.advance_clock(5 + 120 + 2 + 10)
    assert world.wait_notifications_idle(10)
    transcript = api.call("GET", f"/api/v1/bots/{bot['id']}/transcript").json()
    expected = 5 + len(transcript)
    payloads = [verify(r, world.attendee_webhook_secret) for r in receiver.wait_for(expected)]
    assert len(payloads) == expected
    for p in payloads:
        assert set(p) == {"idempotency_key", "bot_id", "bot_metadata", "trigger", "data"}
        assert p["bot_id"] == bot["id"] and p["bot_metadata"]["user_id"] == "42"
    changes = [
        (p["data"]["old_state"], p["data"]["new_state"])
        for p in payloads
        if p["trigger"] == "bot.state_change"
    ]
    assert changes == [
        ("ready", "joining"),
        ("joining", "joined_recording"),
        ("joined_recording", "leaving"),
        ("leaving", "post_processing"),
        ("post_processing", "ended"),
    ]
    updates = [p["data"] for p in payloads if p["trigger"] == "transcript.update"]
    assert updates == transcript
    assert len({p["idempotency_key"] for p in payloads}) == len(payloads)
    # A tampered payload does not verify.
    tampered = {**payloads[0], "bot_id": "bot_other"}
    with pytest.raises(AuthFailure):
        import base64

        verify_attendee_signature(
            tampered,
            receiver.received[0]["X-Webhook-Signature"],
            base64.b64decode(world.attendee_webhook_secret),
        )
    assert all(d["status"] == 200 for d in world.attendee_webhooks)


def test_bot_level_webhooks_take_precedence_and_filter_triggers(
    sandbox: SandboxServer, api: Attendee, receiver: Receiver
):
    project = Receiver()
    try:
        sandbox.world.attendee_subscribe(project.url)
        api.create(
            deduplication_key="own", webhooks=[{"url": receiver.url, "triggers": ["bot.state_change"]}]
        )
        sandbox.world.advance_clock(10)
        assert sandbox.world.wait_notifications_idle(10)
        got = [json.loads(r["_body"]) for r in receiver.wait_for(2)]
        assert [p["data"]["new_state"] for p in got] == ["joining", "joined_recording"]
        assert project.received == []
    finally:
        project.close()


def test_dropped_webhooks_are_recorded(sandbox: SandboxServer, api: Attendee, receiver: Receiver):
    sandbox.world.attendee_subscribe(receiver.url)
    sandbox.world.set_notification_drop_rate(1.0)
    api.create(deduplication_key="drop")
    assert sandbox.world.wait_notifications_idle(10)
    assert receiver.received == []
    assert [d["dropped"] for d in sandbox.world.attendee_webhooks] == [True]


def test_admin_routes(sandbox: SandboxServer, api: Attendee, receiver: Receiver):
    base = sandbox.base_url
    sub = requests.post(f"{base}/sandbox/attendee/webhooks", json={"url": receiver.url}, timeout=5)
    assert sub.status_code == 201 and sub.json()["triggers"] == ["bot.state_change", "transcript.update"]
    bot = api.create(deduplication_key="admin").json()
    sandbox.world.advance_clock(10)
    ended = requests.post(f"{base}/sandbox/attendee/bots/{bot['id']}/end", timeout=5)
    assert ended.status_code == 200 and ended.json()["state"] == "leaving"
    assert requests.get(f"{base}/sandbox/attendee/bots", timeout=5).json()[0]["id"] == bot["id"]
    assert sandbox.world.wait_notifications_idle(10)
    hooks = requests.get(f"{base}/sandbox/attendee/webhooks", timeout=5).json()
    assert hooks["subscriptions"] == [sub.json()] and hooks["delivered"] and hooks["dropped"] == 0


# -- faults -------------------------------------------------------------------------------------------


def test_rate_limit_and_server_errors_for_the_next_requests(sandbox: SandboxServer, api: Attendee):
    world = sandbox.world
    world.attendee_retry_after_seconds = 7
    world.inject_fault("attendee_rate_limit", count=2)
    for _ in range(2):
        resp = api.call("GET", "/api/v1/bots")
        assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    world.inject_fault("attendee_server_error", count=1, status=502)
    assert api.call("GET", "/api/v1/bots").status_code == 502
    assert api.call("GET", "/api/v1/bots").status_code == 200
    assert world.request_count(path_prefix="/api/v1/bots") == 4
    # Google's faults do not touch Attendee, nor Attendee's Google.
    world.inject_fault("rate_limit", count=1)
    assert api.call("GET", "/api/v1/bots").status_code == 200
    world.clear_faults()


def test_latency_and_conflict_faults(sandbox: SandboxServer, api: Attendee):
    sandbox.world.inject_fault("attendee_latency", count=1, latency_ms=300)
    started = time.monotonic()
    assert api.call("GET", "/api/v1/bots").status_code == 200
    assert time.monotonic() - started >= 0.3
    sandbox.world.inject_fault("attendee_conflict", count=1)
    assert api.create(deduplication_key="c").status_code == 409
    assert sandbox.world.attendee_bots() == []
    assert api.create(deduplication_key="c").status_code == 201


def test_a_slow_create_stores_the_bot_before_the_client_times_out(sandbox: SandboxServer, api: Attendee):
    sandbox.world.inject_fault("attendee_slow_create", latency_ms=1500)
    with pytest.raises(requests.exceptions.Timeout):
        api.call(
            "POST",
            "/api/v1/bots",
            {"meeting_url": MEET, "bot_name": "S", "deduplication_key": "slow"},
            timeout=0.5,
        )
    found = api.call("GET", "/api/v1/bots", params={"deduplication_key": "slow"}).json()["results"]
    assert len(found) == 1 and found[0]["state"] == "joining"
    assert api.create(deduplication_key="slow").status_code == 400  # a retry would be a duplicate


def test_fatal_error_for_a_users_live_bots_or_their_next_one(
    sandbox: SandboxServer, api: Attendee, receiver: Receiver
):
    world = sandbox.world
    user = world.list_users()[0]
    other = world.list_users()[1]
    world.attendee_subscribe(receiver.url)
    mine = api.create(deduplication_key="m", metadata={"user_id": world.get_user(user["email"]).id})
    theirs = api.create(deduplication_key="t", metadata={"user_email": other["email"]})
    world.inject_fault("attendee_fatal_error", user_email=user["email"])
    assert api.get(mine.json()["id"])["state"] == "fatal_error"
    assert api.get(mine.json()["id"])["events"][-1]["sub_type"] == "process_terminated"
    assert api.get(theirs.json()["id"])["state"] == "joining"
    # No live bot for the user: the next one fails while joining.
    world.inject_fault("attendee_fatal_error", user_email=user["email"])
    nxt = api.create(deduplication_key="m2", metadata={"user_email": user["email"]}).json()
    world.advance_clock(10)
    assert api.get(nxt["id"])["state"] == "fatal_error"
    assert world.attendee_bot(nxt["id"])["fatal_reason"] == "process_terminated"
    assert world.wait_notifications_idle(10)
    fatal = [d for d in world.attendee_webhooks if d["payload"]["data"].get("new_state") == "fatal_error"]
    assert len(fatal) == 2


# -- conformance --------------------------------------------------------------------------------------


def test_every_call_above_conforms_to_the_openapi_document(sandbox: SandboxServer, api: Attendee):
    """One pass over every route with the responses the document describes, all validated."""
    world = sandbox.world
    scheduled = api.create(
        join_at=iso_in(sandbox, 3600),
        deduplication_key="oa-1",
        metadata={"user_id": "1"},
        webhooks=[{"url": "https://example.invalid/hook", "triggers": ["bot.state_change"]}],
    )
    live = api.create(deduplication_key="oa-2", metadata={"sandbox_meeting_seconds": 240})
    for resp in (scheduled, live):
        assert resp.status_code == 201
    api.call(
        "GET",
        "/api/v1/bots",
        params={
            "deduplication_key": "oa-1",
            "states": ["scheduled", "joining"],
            "meeting_url": MEET,
            "join_at_after": "2020-01-01T00:00:00Z",
        },
    )
    api.call("PATCH", f"/api/v1/bots/{scheduled.json()['id']}", {"join_at": iso_in(sandbox, 7200)})
    world.advance_clock(100)
    api.call("GET", f"/api/v1/bots/{live.json()['id']}/transcript")
    api.call(
        "GET", f"/api/v1/bots/{live.json()['id']}/transcript", params={"updated_after": iso_in(sandbox, -60)}
    )
    api.call("POST", f"/api/v1/bots/{live.json()['id']}/leave")
    world.advance_clock(20)
    api.call("GET", f"/api/v1/bots/{live.json()['id']}")
    api.call("POST", f"/api/v1/bots/{live.json()['id']}/delete_data")
    api.call("DELETE", f"/api/v1/bots/{scheduled.json()['id']}")
    api.call("GET", f"/api/v1/bots/{scheduled.json()['id']}")  # 404
    api.call("POST", f"/api/v1/bots/{scheduled.json()['id']}/leave")  # 404
    assert api.validated == 12 and api.unlisted == []


def test_concurrent_creates_with_one_key_make_one_bot(sandbox: SandboxServer):
    results: list[int] = []

    def create() -> None:
        resp = requests.post(
            f"{sandbox.base_url}/api/v1/bots",
            json={"meeting_url": MEET, "bot_name": "S", "deduplication_key": "race"},
            headers={"Authorization": f"Token {KEY}"},
            timeout=10,
        )
        results.append(resp.status_code)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] + [400] * 5
    assert len(sandbox.world.attendee_bots()) == 1
