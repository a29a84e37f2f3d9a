"""Shared fixtures: a real PostgreSQL database (migrated once, emptied per test), the token
cipher, and the sandbox emulator served over HTTP on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sunny_pipelines.db import migrate
from sunny_pipelines.db.engine import normalize_url
from sunny_pipelines.db.grants import store_google_grants
from sunny_pipelines.db.models import Base
from sunny_pipelines.resources.ai import AIResource
from sunny_pipelines.resources.attendee import AttendeeResource
from sunny_pipelines.resources.cipher import TokenCipher
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines_tests.google_clients import GMAIL_TOPIC

# The suite-wide check that no token reaches a log, a Dagster event or an error column (and
# pytester, with which that check is itself tested).
pytest_plugins = ["pytester", "sunny_pipelines_tests.token_leaks"]

TEST_DATABASE_URL = normalize_url(
    os.environ.get("SUNNY_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/sunny_test")
)


def _ensure_database(url: str) -> None:
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}
        ).first()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def _drop_database(url: str) -> None:
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        # FORCE: a daemon or code server of the test may still hold a connection.
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def dagster_pg_url() -> str:
    """A fresh PostgreSQL database for Dagster's own storage (runs, event log, schedules), named
    after the test database with `_dagster`. Recreated by the next test that asks for it, not
    dropped after this one: the token-leak check reads its runs when the test has ended."""
    parsed = make_url(TEST_DATABASE_URL)
    url = parsed.set(database=f"{parsed.database}_dagster").render_as_string(hide_password=False)
    _drop_database(url)
    _ensure_database(url)
    return url


@pytest.fixture(scope="session")
def database_url() -> str:
    _ensure_database(TEST_DATABASE_URL)
    # Start from an empty schema so the migrations themselves are under test.
    engine = create_engine(TEST_DATABASE_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    migrate.upgrade(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


@pytest.fixture
def database(database_url: str) -> DatabaseResource:
    resource = DatabaseResource(url=database_url)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with resource.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return resource


@pytest.fixture(scope="session")
def cipher() -> TokenCipher:
    return TokenCipher(key=Fernet.generate_key().decode())


@pytest.fixture
def env_for_definitions(
    database_url: str, cipher: TokenCipher, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Environment under which `sunny_pipelines.definitions` resolves to the test stores."""
    monkeypatch.setenv("SUNNY_DATABASE_URL", database_url)
    monkeypatch.setenv("SUNNY_TOKEN_KEY", cipher.key)
    yield


@pytest.fixture
def sandbox_seed() -> int:
    """The seed of the sandbox's generated world (a test folder may override it)."""
    return 7


@pytest.fixture
def sandbox(sandbox_seed: int):
    """A fresh sandbox world per test (3 users), served over HTTP on 127.0.0.1."""
    from sunny_pipelines.sandbox.server import SandboxServer

    server = SandboxServer(host="127.0.0.1", port=0, users=3, events_per_user=12, seed=sandbox_seed).start()
    yield server
    server.stop()


@pytest.fixture
def google(database: DatabaseResource, cipher: TokenCipher, sandbox) -> GoogleResource:
    return GoogleResource(database=database, cipher=cipher, sandbox_url=sandbox.base_url, num_retries=5)


@pytest.fixture
def connected_users(database: DatabaseResource, cipher: TokenCipher, sandbox) -> list[dict]:
    """The sandbox's users, connected as if each had completed Google consent."""
    grants = sandbox.world.list_users()
    with database.begin() as conn:
        store_google_grants(conn, cipher, grants)
    return grants


@pytest.fixture
def attendee(sandbox) -> AttendeeResource:
    """Attendee as the code location sees it: the sandbox's, with its default API key."""
    return AttendeeResource(base_url=sandbox.base_url, timeout_seconds=5.0)


@pytest.fixture
def ai(sandbox) -> AIResource:
    """The AI client as the code location sees it: the sandbox's OpenAI-compatible API."""
    return AIResource(base_url=sandbox.base_url + "/v1")


@pytest.fixture
def resources(
    database: DatabaseResource,
    cipher: TokenCipher,
    google: GoogleResource,
    attendee: AttendeeResource,
    ai: AIResource,
) -> dict:
    return {"database": database, "cipher": cipher, "google": google, "attendee": attendee, "ai": ai}


@pytest.fixture
def receiver(database: DatabaseResource, sandbox) -> Iterator[str]:
    """The webhook receiver served by uvicorn over HTTP, writing to the test database, with the
    sandbox's Pub/Sub push subscription for `GMAIL_TOPIC` and its Attendee webhooks pointing at it."""
    from sunny_pipelines.sandbox.core.signing import PUBSUB_SERVICE_ACCOUNT
    from sunny_pipelines.webhooks import WebhookSettings, create_app, serve_in_thread

    audience = "https://hooks.sunny.test/webhooks/google/gmail"
    settings = WebhookSettings.from_env(
        {
            "SUNNY_DATABASE_URL": database.url,
            "SUNNY_SANDBOX_URL": sandbox.base_url,
            "SUNNY_PUBSUB_AUDIENCE": audience,
            "SUNNY_PUBSUB_SERVICE_ACCOUNT": PUBSUB_SERVICE_ACCOUNT,
            "SUNNY_ATTENDEE_WEBHOOK_SECRET": sandbox.world.attendee_webhook_secret,
        }
    )
    base_url, stop = serve_in_thread(create_app(settings), "127.0.0.1", port=0)
    sandbox.world.create_push_subscription(GMAIL_TOPIC, base_url + "/webhooks/google/gmail", audience)
    sandbox.world.attendee_subscribe(base_url + "/webhooks/attendee")
    yield base_url
    stop()
