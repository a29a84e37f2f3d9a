"""Pub/Sub (Gmail) and Attendee pushes signed by the sandbox, received over HTTP.

The sandbox signs Pub/Sub OIDC tokens with its own key and serves the certificate at
`/oauth2/v1/certs`, so the receiver is configured exactly as in production apart from
SUNNY_SANDBOX_URL. Forged and expired tokens need a key the test controls: those cases are in
test_gmail_pubsub.py with a test-local signer.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.sandbox.push import PUBSUB_SERVICE_ACCOUNT
from sunny_pipelines.webhooks import WebhookSettings, attendee_signature, create_app, serve_in_thread
from sunny_pipelines_tests.webhooks.conftest import ATTENDEE_SECRET, inbox_count, inbox_rows

AUDIENCE = "https://hooks.sunny.example/webhooks/google/gmail"


@pytest.fixture
def served(sandbox: Any, database: DatabaseResource) -> Iterator[str]:
    settings = WebhookSettings.from_env(
        {
            "SUNNY_DATABASE_URL": database.url,
            "SUNNY_SANDBOX_URL": sandbox.base_url,
            "SUNNY_PUBSUB_AUDIENCE": AUDIENCE,
            "SUNNY_PUBSUB_SERVICE_ACCOUNT": PUBSUB_SERVICE_ACCOUNT,
            "SUNNY_ATTENDEE_WEBHOOK_SECRET": ATTENDEE_SECRET,
        }
    )
    assert settings.pubsub_certs_url == f"{sandbox.base_url}/oauth2/v1/certs"
    base_url, stop = serve_in_thread(create_app(settings))
    yield base_url
    stop()


def test_sandbox_pubsub_push_becomes_a_gmail_row(
    sandbox: Any, connected_users: list[dict[str, Any]], database: DatabaseResource, served: str
) -> None:
    user = connected_users[1]
    endpoint = f"{served}/webhooks/google/gmail"
    data = {"emailAddress": user["email"], "historyId": 4242}
    assert sandbox.world.pubsub_push(endpoint, AUDIENCE, data) == 200
    # The same through the sandbox's HTTP control endpoint, as a non-Python tool would drive it.
    via_http = requests.post(
        f"{sandbox.base_url}/sandbox/pubsub/push",
        json={"endpoint": endpoint, "audience": AUDIENCE, "data": {**data, "historyId": 4243}},
        timeout=10,
    )
    assert via_http.json() == {"status": 200}
    rows = inbox_rows(database)
    expected = [("google_gmail", user["id"], "pending")] * 2
    assert [(r["source"], r["user_id"], r["status"]) for r in rows] == expected
    assert [r["payload"]["historyId"] for r in rows] == ["4242", "4243"]
    assert rows[0]["payload"]["subscription"] == "projects/sunny-sandbox/subscriptions/gmail-push"
    assert rows[0]["dedup_key"] == f"pubsub:{rows[0]['payload']['messageId']}"


def test_sandbox_pubsub_push_for_an_unknown_mailbox_is_acknowledged(
    sandbox: Any, connected_users: list[dict[str, Any]], database: DatabaseResource, served: str
) -> None:
    data = {"emailAddress": "nobody@sandbox.example", "historyId": "1"}
    assert sandbox.world.pubsub_push(f"{served}/webhooks/google/gmail", AUDIENCE, data) == 200
    [row] = inbox_rows(database)
    assert (row["status"], row["error"]) == ("rejected", "unknown_mailbox")


def test_sandbox_token_for_another_audience_or_account_is_refused(
    sandbox: Any, connected_users: list[dict[str, Any]], database: DatabaseResource, served: str
) -> None:
    endpoint = f"{served}/webhooks/google/gmail"
    data = {"emailAddress": connected_users[0]["email"], "historyId": "1"}
    assert sandbox.world.pubsub_push(endpoint, "https://someone-else.example/push", data) == 401
    envelope = {"message": {"data": base64.b64encode(b"{}").decode(), "messageId": "m-1"}}
    token = sandbox.world.pubsub_push_jwt(AUDIENCE, email="intruder@evil.iam.gserviceaccount.com")
    auth = {"Authorization": f"Bearer {token}"}
    response = requests.post(endpoint, json=envelope, headers=auth, timeout=10)
    assert response.status_code == 403
    assert response.json() == {"error": "wrong_service_account"}
    assert inbox_count(database) == 0


def test_sandbox_attendee_webhook_is_verified_and_deduplicated(
    sandbox: Any, connected_users: list[dict[str, Any]], database: DatabaseResource, served: str
) -> None:
    user = connected_users[0]
    payload = {
        "idempotency_key": "0b7e5f8e-6a8c-4bde-9d3c-2f1e7a9c1d42",
        "bot_id": "bot_3hf8s9dk2",
        "bot_metadata": {"user_id": user["id"]},
        "trigger": "bot.state_change",
        "data": {"new_state": "ended", "old_state": "leaving", "event_type": "bot_left_meeting"},
    }
    # The sandbox's signer and the receiver's agree on the formula.
    key = base64.b64decode(ATTENDEE_SECRET)
    assert sandbox.world.sign_attendee_payload(payload, ATTENDEE_SECRET) == attendee_signature(payload, key)

    url = f"{served}/webhooks/attendee"
    assert sandbox.world.attendee_emit(url, ATTENDEE_SECRET, payload) == 200
    assert sandbox.world.attendee_emit(url, ATTENDEE_SECRET, payload) == 200
    other_secret = base64.b64encode(b"some other project's secret").decode()
    assert sandbox.world.attendee_emit(url, other_secret, {**payload, "idempotency_key": "k2"}) == 401
    [row] = inbox_rows(database)
    assert (row["source"], row["user_id"], row["dedup_key"]) == (
        "attendee",
        user["id"],
        "attendee:0b7e5f8e-6a8c-4bde-9d3c-2f1e7a9c1d42",
    )
    assert row["payload"] == payload
