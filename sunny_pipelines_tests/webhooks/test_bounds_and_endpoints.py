"""Values beyond what Google sends, the generic `/webhooks/google/{endpoint}` rule, and the
receiver's independence from Dagster and the domains."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import Source
from sunny_pipelines.webhooks import WebhookSettings
from sunny_pipelines.webhooks.app import UINT64_MAX
from sunny_pipelines.webhooks.inbox import channel_opened_for
from sunny_pipelines_tests.webhooks.conftest import (
    PUBSUB_SHARED_SECRET,
    add_channel,
    channel_headers,
    inbox_count,
    inbox_rows,
    rejected_count,
)

CALENDAR = "/webhooks/google/calendar"
DRIVE = "/webhooks/google/drive"
GMAIL_WITH_SECRET = f"/webhooks/google/gmail?token={PUBSUB_SHARED_SECRET}"

# --- the receiver loads no Dagster and no domain -------------------------------------------------

IMPORT_PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys, time
    start = time.perf_counter()
    import sunny_pipelines.webhooks as package
    names = [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    for name in names:
        importlib.import_module(name)
    elapsed = time.perf_counter() - start
    print(json.dumps({
        "seconds": elapsed,
        "submodules": names,
        "dagster": sorted(m for m in sys.modules if m == "dagster" or m.startswith("dagster")),
        "sunny": sorted(m for m in sys.modules if m.startswith("sunny_pipelines")),
    }))
    """
)
# Modules the receiver may use: the database contract, the shared vocabulary, itself.
ALLOWED_SUNNY_PREFIXES = ("sunny_pipelines.webhooks", "sunny_pipelines.db", "sunny_pipelines.vocabulary")
# Measured: ~0.9 s on the 2-core dev machine (SQLAlchemy, Starlette, uvicorn, cryptography, jwt).
IMPORT_BOUND_SECONDS = 5.0


def test_importing_the_receiver_loads_no_dagster_and_no_domain() -> None:
    # A fresh interpreter: what the test process already imported does not count.
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"importing sunny_pipelines.webhooks and its submodules took {result['seconds']:.2f} s")
    assert {"sunny_pipelines.webhooks.app", "sunny_pipelines.webhooks.__main__"} <= set(result["submodules"])
    assert result["dagster"] == []
    strays = [
        name
        for name in result["sunny"]
        if name != "sunny_pipelines" and not name.startswith(ALLOWED_SUNNY_PREFIXES)
    ]
    assert strays == []
    assert result["seconds"] < IMPORT_BOUND_SECONDS


# --- message numbers, history ids, header sizes -------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [str(2**64), "9" * 20, "1" * 21, "0" * 25 + "7", "9" * 4000],
    ids=["2^64", "20-nines", "21-digits", "padded", "4000-digits"],
)
def test_message_number_beyond_uint64_is_400(
    client: TestClient, database: DatabaseResource, users: dict[str, str], number: str
) -> None:
    add_channel(database, "ch-1")
    response = client.post(CALENDAR, headers=channel_headers("ch-1", number=number))
    assert response.status_code == 400
    assert response.json() == {"error": "bad_header"}
    assert inbox_count(database) == 0


@pytest.mark.parametrize("number", [str(2**63), str(UINT64_MAX), "0"])
def test_message_number_within_uint64_is_accepted(
    client: TestClient, database: DatabaseResource, users: dict[str, str], number: str
) -> None:
    add_channel(database, "ch-1")
    response = client.post(CALENDAR, headers=channel_headers("ch-1", number=number))
    assert response.status_code == 200, response.text
    [row] = inbox_rows(database)
    assert row["payload"]["message_number"] == int(number)
    assert row["dedup_key"] == f"google:ch-1:{number}"


@pytest.fixture
def gmail_client(
    settings: WebhookSettings, make_client: Callable[[WebhookSettings], TestClient]
) -> TestClient:
    return make_client(dataclasses.replace(settings, pubsub_shared_secret=PUBSUB_SHARED_SECRET))


def _gmail_envelope(history: object) -> dict[str, object]:
    raw = json.dumps({"emailAddress": "alice@example.com", "historyId": history}).encode()
    return {
        "message": {"data": base64.b64encode(raw).decode(), "messageId": "m-1"},
        "subscription": "projects/p/subscriptions/s",
    }


@pytest.mark.parametrize(
    "history", ["9" * 4000, str(2**64), 2**64, "1" * 21], ids=["4000-digits", "2^64", "2^64-int", "21-digits"]
)
def test_history_id_beyond_uint64_is_recorded_as_rejected(
    gmail_client: TestClient, database: DatabaseResource, users: dict[str, str], history: object
) -> None:
    """Authenticated Pub/Sub messages are acknowledged (Pub/Sub redelivers every non-2xx for
    days, shared/DESIGN.md) but recorded `rejected` with the reason, never queued."""
    response = gmail_client.post(GMAIL_WITH_SECRET, json=_gmail_envelope(history))
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    assert response.json()["reason"] == "bad_message_data"
    [row] = inbox_rows(database)
    assert (row["status"], row["error"], row["user_id"]) == ("rejected", "bad_message_data", None)
    assert row["payload"]["historyId"] is None
    assert len(json.dumps(row["payload"])) < 2048


@pytest.mark.parametrize("history", [str(UINT64_MAX), UINT64_MAX])
def test_history_id_at_uint64_max_is_queued(
    gmail_client: TestClient, database: DatabaseResource, users: dict[str, str], history: object
) -> None:
    response = gmail_client.post(GMAIL_WITH_SECRET, json=_gmail_envelope(history))
    assert response.json()["status"] == "accepted", response.text
    assert inbox_rows(database)[0]["payload"]["historyId"] == str(UINT64_MAX)


def test_a_100_kb_header_is_431(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    """In-process (any ASGI server): the app's own check. Over uvicorn the protocol refuses it
    before the app runs (test_slow_clients.py)."""
    add_channel(database, "ch-1")
    headers = channel_headers("ch-1", **{"X-Padding": "a" * 100_000})
    response = client.post(CALENDAR, headers=headers)
    assert response.status_code == 431
    assert response.json() == {"error": "headers_too_large"}
    assert response.headers["connection"] == "close"
    assert inbox_count(database) == 0
    assert rejected_count(client, "headers_too_large") == 1


def test_a_long_google_header_is_400(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-1")
    response = client.post(CALENDAR, headers=channel_headers("ch-1", **{"X-Goog-Resource-URI": "u" * 4000}))
    assert response.status_code == 400
    assert response.json() == {"error": "bad_header"}


# --- one rule for every Google channel endpoint ---------------------------------------------------


def test_unknown_google_endpoint_is_404_not_found(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-1", address="https://hooks.example.test/webhooks/google/photos")
    for path in ("/webhooks/google/photos", "/webhooks/google/CALENDAR", "/webhooks/google/attendee"):
        response = client.post(path, headers=channel_headers("ch-1"))
        assert response.status_code == 404, path
        assert response.json() == {"error": "not_found"}
    assert inbox_count(database) == 0
    assert rejected_count(client, "not_found") == 3


def test_endpoint_names_the_inbox_source(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-cal")
    add_channel(database, "ch-drive", service="drive", target="changes")
    assert client.post(CALENDAR, headers=channel_headers("ch-cal")).status_code == 200
    assert client.post(DRIVE, headers=channel_headers("ch-drive")).status_code == 200
    sources = {row["channel_id"]: row["source"] for row in inbox_rows(database)}
    assert sources == {"ch-cal": Source.GOOGLE_CALENDAR, "ch-drive": Source.GOOGLE_DRIVE}
    assert Source.for_google_endpoint("drive") is Source.GOOGLE_DRIVE


def test_channel_is_accepted_only_on_the_path_it_was_opened_for(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    # The channel's address decides, not its service: a calendar channel opened on drive's path.
    add_channel(database, "ch-odd", service="calendar_events", endpoint="drive")
    assert client.post(CALENDAR, headers=channel_headers("ch-odd")).json() == {"error": "wrong_endpoint"}
    assert client.post(DRIVE, headers=channel_headers("ch-odd")).status_code == 200
    # A channel without an address belongs to no endpoint.
    add_channel(database, "ch-none", address="")
    response = client.post(CALENDAR, headers=channel_headers("ch-none"))
    assert (response.status_code, response.json()) == (404, {"error": "wrong_endpoint"})
    # Behind a proxy that strips a public prefix, the address has the prefix.
    add_channel(database, "ch-proxy", address="https://edge.example.test/sunny/webhooks/google/calendar/")
    assert client.post(CALENDAR, headers=channel_headers("ch-proxy")).status_code == 200


@pytest.mark.parametrize(
    ("address", "path", "expected"),
    [
        ("https://h/webhooks/google/calendar", "/webhooks/google/calendar", True),
        ("https://h/webhooks/google/calendar?x=1", "/webhooks/google/calendar", True),
        ("https://h/prefix/webhooks/google/drive", "/webhooks/google/drive", True),
        ("https://h/webhooks/google/drive", "/webhooks/google/calendar", False),
        ("https://h/webhooks/google/xcalendar", "/webhooks/google/calendar", False),
        ("https://h/webhooks/google/calendar", "/webhooks/google/calendar/", True),
        (None, "/webhooks/google/calendar", False),
    ],
)
def test_channel_opened_for(address: str | None, path: str, expected: bool) -> None:
    assert channel_opened_for(address, path) is expected
