"""Gmail notifications through Pub/Sub push: OIDC (or shared-secret) authentication, then one
row per message id; authenticated but unusable messages are acknowledged and recorded."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.testclient import TestClient

from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.webhooks import WebhookSettings
from sunny_pipelines.webhooks.auth import CertCache, CertsUnavailable
from sunny_pipelines_tests.webhooks.conftest import (
    PUBSUB_SHARED_SECRET,
    OidcIssuer,
    inbox_count,
    inbox_rows,
    rejected_count,
)

GMAIL = "/webhooks/google/gmail"
SUBSCRIPTION = "projects/sunny-test/subscriptions/gmail-push"


def envelope(
    email: str = "alice@example.com", history: Any = 123456, message_id: str = "m-1", data: str | None = None
) -> dict[str, Any]:
    if data is None:
        raw = json.dumps({"emailAddress": email, "historyId": history}).encode()
        data = base64.urlsafe_b64encode(raw).decode()
    return {
        "message": {
            "data": data,
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": "2026-11-02T10:00:00.000Z",
            "attributes": {},
        },
        "subscription": SUBSCRIPTION,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_valid_jwt_queues_one_row(
    client: TestClient, database: DatabaseResource, users: dict[str, str], oidc: OidcIssuer
) -> None:
    response = client.post(GMAIL, json=envelope(), headers=bearer(oidc.token()))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    [row] = inbox_rows(database)
    assert row["source"] == "google_gmail"
    assert row["user_id"] == users["alice"]
    assert row["dedup_key"] == "pubsub:m-1"
    assert row["status"] == "pending"
    assert row["payload"] == {
        "emailAddress": "alice@example.com",
        "historyId": "123456",
        "messageId": "m-1",
        "publishTime": "2026-11-02T10:00:00.000Z",
        "subscription": SUBSCRIPTION,
    }


def test_mailbox_maps_through_google_connection_case_insensitively(
    client: TestClient, database: DatabaseResource, users: dict[str, str], oidc: OidcIssuer
) -> None:
    # Bob's Google mailbox differs from his account email; standard base64 and a string historyId.
    raw = json.dumps({"emailAddress": "bob.google@gmail.example", "historyId": "77"}).encode()
    body = envelope(data=base64.b64encode(raw).decode())
    assert client.post(GMAIL, json=body, headers=bearer(oidc.token())).status_code == 200
    [row] = inbox_rows(database)
    assert (row["user_id"], row["payload"]["historyId"]) == (users["bob"], "77")


def test_redelivered_message_is_a_duplicate(
    client: TestClient, database: DatabaseResource, users: dict[str, str], oidc: OidcIssuer
) -> None:
    for _ in range(3):
        response = client.post(GMAIL, json=envelope(message_id="m-dup"), headers=bearer(oidc.token()))
        assert response.status_code == 200
    assert response.json() == {"status": "duplicate"}
    assert inbox_count(database) == 1


@pytest.mark.parametrize(
    ("make_token", "status", "reason"),
    [
        (lambda o, k: o.token(audience="https://someone-else.example/push"), 401, "jwt_wrong_audience"),
        (lambda o, k: o.token(email="intruder@evil.iam.gserviceaccount.com"), 403, "wrong_service_account"),
        (lambda o, k: o.token(email_verified=False), 403, "email_not_verified"),
        (lambda o, k: o.token(expires_in=-600), 401, "jwt_expired"),
        (lambda o, k: o.token(key=k), 401, "bad_jwt"),
        (lambda o, k: o.token(kid="unknown-kid"), 401, "bad_jwt"),
        (lambda o, k: o.token(issuer="https://issuer.evil.example"), 401, "jwt_wrong_issuer"),
        (lambda o, k: "not.a.jwt", 401, "bad_jwt"),
        (lambda o, k: o.token()[:-6], 401, "bad_jwt"),
    ],
    ids=[
        "bad-audience",
        "wrong-service-account",
        "email-not-verified",
        "expired",
        "bad-signature",
        "unknown-kid",
        "wrong-issuer",
        "garbage",
        "truncated-signature",
    ],
)
def test_bad_jwt_is_refused_without_a_row(
    client: TestClient,
    database: DatabaseResource,
    users: dict[str, str],
    oidc: OidcIssuer,
    other_key: rsa.RSAPrivateKey,
    caplog: pytest.LogCaptureFixture,
    make_token: Callable[[OidcIssuer, rsa.RSAPrivateKey], str],
    status: int,
    reason: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="sunny_pipelines.webhooks")
    token = make_token(oidc, other_key)
    response = client.post(GMAIL, json=envelope(), headers=bearer(token))
    assert response.status_code == status
    assert response.json() == {"error": reason}
    assert inbox_count(database) == 0
    assert rejected_count(client, reason) == 1
    assert not any(token in record.getMessage() for record in caplog.records)


def test_unsigned_alg_none_token_is_refused(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    claims = {"aud": "x", "email": "y", "exp": 9999999999, "iat": 0}
    header = base64.urlsafe_b64encode(b'{"alg":"none","kid":"test-kid-1"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = client.post(GMAIL, json=envelope(), headers=bearer(f"{header}.{payload}."))
    assert response.status_code == 401
    assert inbox_count(database) == 0


def test_missing_authentication_is_401(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    assert client.post(GMAIL, json=envelope()).status_code == 401
    # With OIDC configured and no shared secret, a query token is not a way in.
    assert client.post(f"{GMAIL}?token={PUBSUB_SHARED_SECRET}", json=envelope()).status_code == 401
    assert client.post(GMAIL, json=envelope(), headers={"Authorization": "Basic abc"}).status_code == 401
    assert inbox_count(database) == 0
    assert rejected_count(client, "missing_auth") == 3


def test_shared_secret_fallback(
    database: DatabaseResource,
    users: dict[str, str],
    make_client: Callable[[WebhookSettings], TestClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(
        WebhookSettings(database_url=database.url, pubsub_shared_secret=PUBSUB_SHARED_SECRET)
    )
    good = client.post(f"{GMAIL}?token={PUBSUB_SHARED_SECRET}", json=envelope(message_id="m-s1"))
    assert good.status_code == 200, good.text
    wrong = client.post(f"{GMAIL}?token=guess", json=envelope(message_id="m-s2"))
    assert wrong.status_code == 403
    assert wrong.json() == {"error": "bad_shared_secret"}
    missing = client.post(GMAIL, json=envelope(message_id="m-s3"))
    assert missing.status_code == 401
    # Without OIDC configured a bearer token is ignored, not trusted.
    ignored = client.post(GMAIL, json=envelope(message_id="m-s4"), headers=bearer("whatever"))
    assert ignored.status_code == 401
    assert [row["dedup_key"] for row in inbox_rows(database)] == ["pubsub:m-s1"]
    # The receiver's own logs (the test client logs its request URLs, which is not our doing).
    ours = [r for r in caplog.records if r.name.startswith(("sunny_pipelines", "uvicorn"))]
    assert ours and not any(PUBSUB_SHARED_SECRET in record.getMessage() for record in ours)


def test_shared_secret_fallback_when_oidc_configured_but_not_presented(
    settings: WebhookSettings,
    database: DatabaseResource,
    users: dict[str, str],
    oidc: OidcIssuer,
    make_client: Callable[[WebhookSettings], TestClient],
) -> None:
    client = make_client(dataclasses.replace(settings, pubsub_shared_secret=PUBSUB_SHARED_SECRET))
    assert (
        client.post(f"{GMAIL}?token={PUBSUB_SHARED_SECRET}", json=envelope(message_id="a")).status_code == 200
    )
    # A presented JWT is judged on its own: a bad one is not rescued by a good query token.
    bad = client.post(
        f"{GMAIL}?token={PUBSUB_SHARED_SECRET}",
        json=envelope(message_id="b"),
        headers=bearer(oidc.token(audience="https://other.example")),
    )
    assert bad.status_code == 401
    assert inbox_count(database) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (envelope(email="stranger@example.com"), "unknown_mailbox"),
        (envelope(email="gone@example.com"), "unknown_mailbox"),
        (envelope(data="!!not base64!!"), "bad_message_data"),
        (envelope(data=base64.b64encode(b"not json").decode()), "bad_message_data"),
        (
            envelope(data=base64.b64encode(b'{"emailAddress": "alice@example.com"}').decode()),
            "bad_message_data",
        ),
        (envelope(history="abc"), "bad_message_data"),
        (envelope(data=""), "missing_data"),
    ],
    ids=["unknown-mailbox", "deleted-user", "not-base64", "not-json", "no-history", "bad-history", "no-data"],
)
def test_authenticated_but_unusable_is_acknowledged_and_recorded(
    client: TestClient,
    database: DatabaseResource,
    users: dict[str, str],
    oidc: OidcIssuer,
    body: dict[str, Any],
    reason: str,
) -> None:
    response = client.post(GMAIL, json=body, headers=bearer(oidc.token()))
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    [row] = inbox_rows(database)
    assert (row["status"], row["error"], row["user_id"]) == ("rejected", reason, None)
    assert row["processed_at"] is not None
    assert row["dedup_key"] == "pubsub:m-1"
    # Redelivery of the same message adds nothing.
    assert client.post(GMAIL, json=body, headers=bearer(oidc.token())).json() == {"status": "duplicate"}
    assert inbox_count(database) == 1
    assert rejected_count(client, reason) == 1


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"message": "x"}', b'{"message": {"data": "e30="}}', b'{"a": "\\u0000"}'],
    ids=["bad-json", "not-object", "message-not-object", "no-message-id", "nul"],
)
def test_malformed_envelope_is_400(
    client: TestClient, database: DatabaseResource, users: dict[str, str], oidc: OidcIssuer, content: bytes
) -> None:
    response = client.post(
        GMAIL, content=content, headers={**bearer(oidc.token()), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert inbox_count(database) == 0


def test_unauthenticated_body_is_not_parsed(client: TestClient, database: DatabaseResource) -> None:
    # Authentication comes first: a stranger learns nothing about what the body should look like.
    assert client.post(GMAIL, content=b"{not json").status_code == 401


def test_certs_unavailable_is_503(
    settings: WebhookSettings,
    database: DatabaseResource,
    users: dict[str, str],
    oidc: OidcIssuer,
    make_client: Callable[[WebhookSettings], TestClient],
) -> None:
    client = make_client(dataclasses.replace(settings, pubsub_certs_url="http://127.0.0.1:9/oauth2/v1/certs"))
    response = client.post(GMAIL, json=envelope(), headers=bearer(oidc.token()))
    assert response.status_code == 503
    assert response.json() == {"error": "certs_unavailable"}
    assert inbox_count(database) == 0


def test_certs_are_cached(
    settings: WebhookSettings,
    database: DatabaseResource,
    users: dict[str, str],
    oidc: OidcIssuer,
    make_client: Callable[[WebhookSettings], TestClient],
) -> None:
    client = make_client(settings)
    before = len(oidc.requests)
    for n in range(5):
        assert (
            client.post(GMAIL, json=envelope(message_id=f"c{n}"), headers=bearer(oidc.token())).status_code
            == 200
        )
    assert len(oidc.requests) - before == 1


def test_cert_cache_refreshes_on_unknown_kid_at_most_every_min_interval() -> None:
    calls: list[str] = []
    certs = {"k1": "pem1"}

    def fetch(url: str) -> tuple[dict[str, str], float | None]:
        calls.append(url)
        return dict(certs), None

    cache = CertCache("http://certs", ttl_seconds=300, min_refresh_seconds=3600, fetch=fetch)
    assert cache.get("k1") == {"k1": "pem1"}
    certs["k2"] = "pem2"
    # Rate-limited: an unknown kid right after a fetch does not refetch.
    assert "k2" not in cache.get("k2")
    assert len(calls) == 1
    cache.min_refresh_seconds = 0
    assert cache.get("k2")["k2"] == "pem2"
    assert len(calls) == 2


def test_cert_cache_serves_stale_certs_when_refresh_fails() -> None:
    responses: list[Any] = [({"k1": "pem1"}, None), CertsUnavailable("down")]

    def fetch(url: str) -> tuple[dict[str, str], float | None]:
        item = responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    cache = CertCache("http://certs", ttl_seconds=0, min_refresh_seconds=0, fetch=fetch)
    assert cache.get("k1") == {"k1": "pem1"}
    assert cache.get("k1") == {"k1": "pem1"}
    assert responses == []
