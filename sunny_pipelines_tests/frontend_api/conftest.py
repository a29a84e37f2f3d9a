"""The frontend API in process (Starlette's TestClient) over the test database, with OAuth and
the Google APIs at the sandbox, served over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select
from starlette.testclient import TestClient

from sunny_pipelines.db.models import GoogleConnection, OAuthState
from sunny_pipelines.frontend_api import FrontendSettings, create_app

FRONTEND_KEY = "frontend-test-key-0123456789"


@pytest.fixture
def settings(database, cipher, sandbox) -> FrontendSettings:
    return FrontendSettings.from_env(
        {
            "SUNNY_DATABASE_URL": database.url,
            "SUNNY_TOKEN_KEY": cipher.key,
            "SUNNY_SANDBOX_URL": sandbox.base_url,
            "SUNNY_FRONTEND_API_KEY": FRONTEND_KEY,
        }
    )


@pytest.fixture
def api(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def auth(key: str = FRONTEND_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Consent:
    """One trip through the connect flow: the consent URL the start endpoint sent the browser to,
    and the callback URL Google (the sandbox) sent it back with."""

    consent_url: str
    callback_url: str

    @property
    def consent_params(self) -> dict[str, str]:
        return query_of(self.consent_url)

    @property
    def callback_params(self) -> dict[str, str]:
        return query_of(self.callback_url)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def consent(api: TestClient, login_hint: str) -> Consent:
    """Start (our API), then the consent screen (the sandbox, over HTTP): where Google sends the
    browser back. The callback itself is left to the test."""
    start = api.get("/oauth/google/start", params={"login_hint": login_hint})
    assert start.status_code == 302, start.text
    consent_url = start.headers["location"]
    screen = requests.get(consent_url, allow_redirects=False, timeout=10)
    assert screen.status_code == 302, screen.text
    return Consent(consent_url, screen.headers["Location"])


def connect(api: TestClient, login_hint: str) -> Any:
    """The whole flow; returns the callback's answer."""
    return api.get(consent(api, login_hint).callback_url)


def grants(database) -> dict[str, Any]:
    with database.begin() as conn:
        return {row.user_id: row for row in conn.execute(select(GoogleConnection.__table__))}


def states(database) -> list[Any]:
    with database.begin() as conn:
        return list(conn.execute(select(OAuthState.__table__).order_by(OAuthState.created_at)))
