"""Attendee webhooks: HMAC-SHA256 over the canonical JSON, one row per idempotency_key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.webhooks import WebhookSettings, attendee_signature
from sunny_pipelines_tests.webhooks.conftest import ATTENDEE_SECRET, inbox_count, inbox_rows, rejected_count

ATTENDEE = "/webhooks/attendee"
KEY = base64.b64decode(ATTENDEE_SECRET)


def event(key: str = "idem-1", user_id: Any = "u-alice", trigger: str = "bot.state_change") -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "bot_id": "bot_abc123",
        "bot_metadata": {"user_id": user_id, "meeting": "Réunion"} if user_id is not None else {},
        "trigger": trigger,
        "data": {"new_state": "joined_recording", "old_state": "joining", "event_type": "bot_joined_meeting"},
    }


def post_signed(
    client: TestClient, payload: Any, *, signature: str | bytes | None = None, raw: bytes | None = None
) -> Any:
    # Attendee sends its own serialization; the signature is over the canonical form, so the
    # wire bytes (spacing, key order) must not matter.
    body = raw if raw is not None else json.dumps(payload, indent=2).encode()
    headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
    sig = attendee_signature(payload, KEY) if signature is None else signature
    if sig:
        headers["X-Webhook-Signature"] = sig
    return client.post(ATTENDEE, content=body, headers=headers)


def test_signature_matches_independent_known_vector() -> None:
    secret_b64 = "c2VjcmV0LWtleS1mb3ItdGVzdHM="  # base64 of b"secret-key-for-tests"
    payload = {"trigger": "transcript.update", "idempotency_key": "k-1", "data": {"text": "héllo", "n": 2}}
    # Computed independently from the formula: sorted keys, no spaces, UTF-8 (not \\u-escaped).
    message = '{"data":{"n":2,"text":"héllo"},"idempotency_key":"k-1","trigger":"transcript.update"}'
    expected = base64.b64encode(
        hmac.new(base64.b64decode(secret_b64), message.encode("utf-8"), hashlib.sha256).digest()
    ).decode()
    assert attendee_signature(payload, base64.b64decode(secret_b64)) == expected
    assert expected == "lgufKVHymKijtg1RafGskrJ9LOhyzpE2V+GQ9aDlut4="


def test_known_vector_is_accepted_by_the_receiver(
    database: DatabaseResource, users: dict[str, str], make_client: Callable[[WebhookSettings], TestClient]
) -> None:
    client = make_client(
        WebhookSettings(database_url=database.url, attendee_webhook_secret="c2VjcmV0LWtleS1mb3ItdGVzdHM=")
    )
    payload = {"trigger": "transcript.update", "idempotency_key": "k-1", "data": {"text": "héllo", "n": 2}}
    response = client.post(
        ATTENDEE,
        content=json.dumps(payload, ensure_ascii=True).encode(),
        headers={"X-Webhook-Signature": "lgufKVHymKijtg1RafGskrJ9LOhyzpE2V+GQ9aDlut4="},
    )
    assert response.status_code == 200, response.text
    assert inbox_rows(database)[0]["payload"] == payload


def test_good_signature_queues_one_row(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    payload = event()
    response = post_signed(client, payload)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    [row] = inbox_rows(database)
    assert row["source"] == "attendee"
    assert row["dedup_key"] == "attendee:idem-1"
    assert row["user_id"] == users["alice"]
    assert row["channel_id"] is None
    assert row["status"] == "pending"
    assert row["payload"] == payload


@pytest.mark.parametrize("user_id", [None, "u-nobody", 12345, {"nested": 1}, "x" * 65])
def test_a_webhook_naming_no_known_user_is_acknowledged_and_recorded_rejected(
    client: TestClient, database: DatabaseResource, users: dict[str, str], user_id: Any
) -> None:
    # Attendee retries what is not acknowledged: an unknown bot's webhook is kept, never run.
    assert post_signed(client, event(user_id=user_id)).status_code == 200
    [row] = inbox_rows(database)
    assert row["user_id"] is None
    assert (row["status"], row["error"]) == ("rejected", "unknown_bot: no user of ours has this bot")


def test_duplicate_idempotency_key_is_one_row(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    assert post_signed(client, event("idem-dup")).json()["status"] == "accepted"
    assert post_signed(client, event("idem-dup", trigger="transcript.update")).json() == {
        "status": "duplicate"
    }
    assert inbox_count(database) == 1


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("", "missing_signature"),
        (base64.b64encode(b"\0" * 32).decode(), "bad_signature"),
        ("not base64 at all", "bad_signature"),
        ("caf\xe9".encode("latin-1"), "bad_signature"),
    ],
    ids=["missing", "wrong", "garbage", "non-ascii"],
)
def test_bad_signature_is_401_without_a_row(
    client: TestClient, database: DatabaseResource, users: dict[str, str], signature: str | bytes, reason: str
) -> None:
    response = post_signed(client, event(), signature=signature)
    assert response.status_code == 401
    assert response.json() == {"error": reason}
    assert inbox_count(database) == 0
    assert rejected_count(client, reason) == 1


def test_signature_over_a_different_payload_is_refused(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    tampered = event()
    signature = attendee_signature(tampered, KEY)
    tampered["data"]["new_state"] = "ended"
    assert post_signed(client, tampered, signature=signature).status_code == 401
    assert inbox_count(database) == 0


def test_unconfigured_secret_refuses_everything(
    database: DatabaseResource, users: dict[str, str], make_client: Callable[[WebhookSettings], TestClient]
) -> None:
    client = make_client(WebhookSettings(database_url=database.url))
    response = post_signed(client, event())
    assert response.status_code == 401
    assert response.json() == {"error": "attendee_secret_not_configured"}
    assert inbox_count(database) == 0


@pytest.mark.parametrize(
    ("raw", "payload", "reason"),
    [
        (b"{oops", None, "bad_json"),
        (b'{"idempotency_key": "k", "x": NaN}', None, "bad_json"),
        (b'{"idempotency_key": "k", "x": 1e999}', None, "bad_json"),
        (b'{"idempotency_key": "k\\u0000"}', None, "bad_json"),
        (b'{"idempotency_key": "\\ud800"}', None, "bad_json"),
        (b"\xff\xfe{}", None, "bad_json"),
        (b"[" * 5000 + b"]" * 5000, None, "bad_json"),
        (None, {"trigger": "bot.state_change"}, "bad_payload"),
        (None, ["idempotency_key"], "bad_payload"),
        (None, {"idempotency_key": ""}, "bad_payload"),
        (None, {"idempotency_key": 5}, "bad_payload"),
    ],
    ids=[
        "syntax",
        "nan",
        "inf",
        "nul",
        "surrogate",
        "not-utf8",
        "deep",
        "no-key",
        "list",
        "empty-key",
        "int-key",
    ],
)
def test_bad_body_is_400_without_a_row(
    client: TestClient,
    database: DatabaseResource,
    users: dict[str, str],
    raw: bytes | None,
    payload: Any,
    reason: str,
) -> None:
    if raw is not None:
        response = client.post(ATTENDEE, content=raw, headers={"X-Webhook-Signature": "AAAA"})
    else:
        response = post_signed(client, payload)
    assert response.status_code == 400
    assert response.json() == {"error": reason}
    assert inbox_count(database) == 0


def test_oversized_attendee_body_is_413(client: TestClient, database: DatabaseResource) -> None:
    payload = {"idempotency_key": "big", "data": "x" * (64 * 1024)}
    assert post_signed(client, payload).status_code == 413
    assert inbox_count(database) == 0
