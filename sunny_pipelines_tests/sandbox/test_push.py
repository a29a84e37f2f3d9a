"""Signed pushes: Pub/Sub push OIDC tokens verified by google-auth, and Attendee webhook signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import google.auth.transport.requests
import pytest
import requests
from google.oauth2 import id_token

from sunny_pipelines.sandbox.server import SandboxServer
from sunny_pipelines_tests.sandbox.helpers import Receiver


def test_pubsub_jwt_verifies_with_google_auth(sandbox: SandboxServer) -> None:
    certs = requests.get(sandbox.base_url + "/oauth2/v1/certs", timeout=5).json()
    [(kid, pem)] = certs.items()
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    token = sandbox.world.pubsub_push_jwt("https://hooks.example.com/webhooks/google/gmail")
    claims = id_token.verify_token(
        token,
        google.auth.transport.requests.Request(),
        audience="https://hooks.example.com/webhooks/google/gmail",
        certs_url=sandbox.base_url + "/oauth2/v1/certs",
    )
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["email"] == "sandbox-pubsub@sunny-sandbox.iam.gserviceaccount.com"
    assert claims["email_verified"] is True and claims["sub"]
    assert claims["exp"] > claims["iat"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "RS256", "kid": kid, "typ": "JWT"}
    with pytest.raises(ValueError):
        id_token.verify_token(
            token,
            google.auth.transport.requests.Request(),
            audience="https://someone-else.example.com",
            certs_url=sandbox.base_url + "/oauth2/v1/certs",
        )


def test_pubsub_push_endpoint_delivers_an_envelope(sandbox: SandboxServer, receiver: Receiver) -> None:
    data = {"emailAddress": "ada.lovelace@example.com", "historyId": 12345}
    resp = requests.post(
        sandbox.base_url + "/sandbox/pubsub/push",
        json={"endpoint": receiver.url, "audience": "sunny-webhooks", "data": data},
        timeout=10,
    )
    assert resp.json() == {"status": 200}
    [got] = receiver.wait_for(1)
    envelope = json.loads(got["_body"])
    assert envelope["subscription"] == "projects/sunny-sandbox/subscriptions/gmail-push"
    message = envelope["message"]
    assert json.loads(base64.b64decode(message["data"])) == data
    assert message["messageId"] and message["publishTime"].endswith("Z")
    scheme, token = got["Authorization"].split(" ", 1)
    assert scheme == "Bearer"
    claims = id_token.verify_token(
        token,
        google.auth.transport.requests.Request(),
        audience="sunny-webhooks",
        certs_url=sandbox.base_url + "/oauth2/v1/certs",
    )
    assert claims["aud"] == "sunny-webhooks"


def test_attendee_signature_and_emit(sandbox: SandboxServer, receiver: Receiver) -> None:
    secret = base64.b64encode(b"attendee-webhook-secret").decode()
    payload = {
        "idempotency_key": "k-1",
        "trigger": "bot.state_change",
        "data": {"new_state": "ended", "n": "é"},
    }
    expected = base64.b64encode(
        hmac.new(
            b"attendee-webhook-secret",
            json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(),
            hashlib.sha256,
        ).digest()
    ).decode()
    assert sandbox.world.sign_attendee_payload(payload, secret) == expected
    resp = requests.post(
        sandbox.base_url + "/sandbox/attendee/emit",
        json={"url": receiver.url, "secret": secret, "payload": payload},
        timeout=10,
    )
    assert resp.json() == {"status": 200}
    [got] = receiver.wait_for(1)
    assert got["X-Webhook-Signature"] == expected
    assert json.loads(got["_body"]) == payload
    bad = requests.post(sandbox.base_url + "/sandbox/attendee/emit", json={"url": receiver.url}, timeout=5)
    assert bad.status_code == 400
