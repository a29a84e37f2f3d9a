"""Fixtures for the webhook receiver: seeded users and channels, a local OIDC key pair whose
certificate is served like Google's `/oauth2/v1/certs`, and app/client factories."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select
from starlette.testclient import TestClient

from sunny_pipelines.db.models import GoogleConnection, User, WatchChannel, WebhookInbox
from sunny_pipelines.db.secrets import channel_token_digest
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.sandbox.push import self_signed_key_and_cert
from sunny_pipelines.webhooks import WebhookSettings, create_app

ATTENDEE_SECRET = base64.b64encode(b"attendee-test-signing-key-0123456789").decode()
PUBSUB_AUDIENCE = "https://hooks.example.test/webhooks/google/gmail"
PUBSUB_SERVICE_ACCOUNT = "gmail-push@sunny-test.iam.gserviceaccount.com"
PUBSUB_SHARED_SECRET = "shared-push-secret-xyz"
KID = "test-kid-1"
WEBHOOK_BASE_URL = "https://hooks.example.test"


def _key_and_cert(common_name: str) -> tuple[rsa.RSAPrivateKey, str]:
    key, cert = self_signed_key_and_cert(common_name, valid_for=timedelta(days=2))
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class OidcIssuer:
    """A stand-in for Google's token signer: signs push JWTs and serves its certificate."""

    key: rsa.RSAPrivateKey
    certs_url: str
    requests: list[str] = field(default_factory=list)

    def token(
        self,
        *,
        audience: str = PUBSUB_AUDIENCE,
        email: str = PUBSUB_SERVICE_ACCOUNT,
        email_verified: bool = True,
        issuer: str = "https://accounts.google.com",
        expires_in: int = 3600,
        kid: str = KID,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        now = int(time.time())
        claims = {
            "aud": audience,
            "azp": "1234567890",
            "email": email,
            "email_verified": email_verified,
            "exp": now + expires_in,
            "iat": now - 10 if expires_in > 0 else now - 7200,
            "iss": issuer,
            "sub": "1234567890",
        }
        return pyjwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="session")
def oidc() -> Iterator[OidcIssuer]:
    key, pem = _key_and_cert("sunny-test-oidc")
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            seen.append(self.path)
            body = json.dumps({KID: pem}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=300")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield OidcIssuer(
        key=key, certs_url=f"http://127.0.0.1:{server.server_address[1]}/oauth2/v1/certs", requests=seen
    )
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def other_key() -> rsa.RSAPrivateKey:
    return _key_and_cert("not-google")[0]


@pytest.fixture
def settings(database: DatabaseResource, oidc: OidcIssuer) -> WebhookSettings:
    return WebhookSettings(
        database_url=database.url,
        attendee_webhook_secret=ATTENDEE_SECRET,
        pubsub_audience=PUBSUB_AUDIENCE,
        pubsub_service_account=PUBSUB_SERVICE_ACCOUNT,
        pubsub_certs_url=oidc.certs_url,
    )


@pytest.fixture
def make_client() -> Iterator[Callable[[WebhookSettings], TestClient]]:
    clients: list[TestClient] = []

    def make(settings: WebhookSettings) -> TestClient:
        client = TestClient(create_app(settings))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(settings: WebhookSettings, make_client: Callable[[WebhookSettings], TestClient]) -> TestClient:
    return make_client(settings)


@pytest.fixture
def users(database: DatabaseResource) -> dict[str, str]:
    """Two active users (one whose Google mailbox differs from the account email), one deleted."""
    with database.begin() as conn:
        conn.execute(
            User.__table__.insert(),
            [
                {"id": "u-alice", "email": "alice@example.com", "timezone": "UTC", "status": "active"},
                {"id": "u-bob", "email": "bob@corp.example", "timezone": "UTC", "status": "active"},
                {"id": "u-gone", "email": "gone@example.com", "timezone": "UTC", "status": "deleted"},
            ],
        )
        conn.execute(
            GoogleConnection.__table__.insert(),
            [
                {"user_id": "u-alice", "google_email": "alice@example.com", "scopes": [], "status": "active"},
                {
                    "user_id": "u-bob",
                    "google_email": "Bob.Google@gmail.example",
                    "scopes": [],
                    "status": "active",
                },
            ],
        )
    return {"alice": "u-alice", "bob": "u-bob", "gone": "u-gone"}


def add_channel(
    database: DatabaseResource,
    channel_id: str,
    *,
    user_id: str = "u-alice",
    service: str = "calendar_events",
    token: str = "channel-token-secret",
    target: str | None = "primary",
    resource_id: str | None = "res-1",
    status: str = "active",
    expires_in: timedelta | None = timedelta(days=7),
    endpoint: str | None = None,
    address: str | None = None,
) -> None:
    """A channel row as the domains open them: ``address`` is the full URL given to Google,
    `<base>/webhooks/google/<endpoint>` (drive channels on `drive`, others on `calendar`)."""
    if address is None:
        endpoint = endpoint or ("drive" if service == "drive" else "calendar")
        address = f"{WEBHOOK_BASE_URL}/webhooks/google/{endpoint}"
    with database.begin() as conn:
        conn.execute(
            WatchChannel.__table__.insert().values(
                id=channel_id,
                user_id=user_id,
                service=service,
                target=target,
                resource_id=resource_id,
                token_hash=channel_token_digest(token),
                address=address,
                expires_at=None if expires_in is None else datetime.now(UTC) + expires_in,
                status=status,
            )
        )


def channel_headers(
    channel_id: str = "ch-1",
    *,
    token: str = "channel-token-secret",
    state: str = "exists",
    number: str = "7",
    resource_id: str = "res-1",
    **extra: str,
) -> dict[str, str]:
    headers = {
        "X-Goog-Channel-ID": channel_id,
        "X-Goog-Channel-Token": token,
        "X-Goog-Resource-ID": resource_id,
        "X-Goog-Resource-State": state,
        "X-Goog-Message-Number": number,
        "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/primary/events?alt=json",
        "X-Goog-Channel-Expiration": "Tue, 01 Dec 2026 00:00:00 GMT",
    }
    headers.update(extra)
    return headers


def inbox_rows(database: DatabaseResource) -> list[dict[str, Any]]:
    with database.begin() as conn:
        rows = conn.execute(select(WebhookInbox.__table__).order_by(WebhookInbox.id)).mappings().all()
    return [dict(row) for row in rows]


def inbox_count(database: DatabaseResource) -> int:
    with database.begin() as conn:
        return conn.execute(select(func.count()).select_from(WebhookInbox.__table__)).scalar_one()


def rejected_count(client: TestClient, reason: str) -> int:
    return client.get("/healthz").json()["rejected"].get(reason, 0)
