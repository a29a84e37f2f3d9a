"""`python -m sunny_pipelines.frontend_api --port N` on the embedded defaults a developer runs:
SQLite migrated by the CLI, the sandbox for Google, every hop over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from sqlalchemy import select

from sunny_pipelines.db.engine import PROJECT_ROOT
from sunny_pipelines.db.models import GoogleConnection, WebhookInbox
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines_tests.stack import free_port, http_ok, running


@dataclass(frozen=True)
class Served:
    base: str  # the API's URL
    database_url: str  # its SQLite database
    env: dict[str, str]


@contextmanager
def served_api(tmp_path, sandbox, cipher, **env: str) -> Iterator[Served]:
    """`python -m sunny_pipelines.frontend_api` on a SQLite database the CLI migrated, with the
    sandbox as Google (``env``: more variables)."""
    url = f"sqlite:///{tmp_path / 'sunny.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environ = {
        **os.environ,
        "SUNNY_DATABASE_URL": url,
        "SUNNY_TOKEN_KEY": cipher.key,
        "SUNNY_SANDBOX_URL": sandbox.base_url,
        "SUNNY_OAUTH_REDIRECT_URI": f"{base}/oauth/google/callback",
        **env,
    }
    upgrade = [sys.executable, "-m", "sunny_pipelines.db", "upgrade"]
    subprocess.run(upgrade, env=environ, cwd=PROJECT_ROOT, check=True, capture_output=True)
    command = [
        sys.executable,
        "-m",
        "sunny_pipelines.frontend_api",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    log = tmp_path / "frontend_api.log"
    with running(command, environ, log, ready=lambda: http_ok(base + "/healthz"), timeout=60):
        yield Served(base, url, environ)


def test_the_served_api_connects_a_user_into_sqlite(tmp_path, sandbox, cipher):
    user = sandbox.world.list_users()[2]
    with served_api(
        tmp_path, sandbox, cipher, SUNNY_HOME=str(tmp_path), SUNNY_FRONTEND_API_KEY="served-key"
    ) as api:
        base = api.base
        # The browser: start, Google's consent (the sandbox), back to the callback.
        answer = requests.get(base + "/oauth/google/start", params={"login_hint": user["email"]}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert [r.status_code for r in answer.history] == [302, 302]
        assert answer.json()["user_id"] == user["id"]
        assert answer.url.startswith(base + "/oauth/google/callback?")

        headers = {"Authorization": "Bearer served-key"}
        queued = requests.post(f"{base}/users/{user['id']}/sync", headers=headers, timeout=10)
        assert queued.status_code == 202 and len(queued.json()["requests"]) == 3
        again = requests.post(f"{base}/users/{user['id']}/sync", headers=headers, timeout=10).json()
        assert [r["queued"] for r in again["requests"]] == [False, False, False]
        status = requests.get(f"{base}/users/{user['id']}/sync-status", headers=headers, timeout=10).json()
        assert status["grant"]["status"] == "active"
        assert [s["pending_notifications"] for s in status["services"]] == [1, 1, 1]
        assert (
            requests.get(base + "/openapi.json", timeout=10).json()["info"]["title"] == "Sunny frontend API"
        )

    with DatabaseResource(url=api.database_url).begin() as conn:
        grant = conn.execute(select(GoogleConnection.__table__)).one()
        assert cipher.decrypt(grant.refresh_token) == sandbox.world.get_user(user["email"]).refresh_token
        assert len(conn.execute(select(WebhookInbox.id)).all()) == 3
    log = (tmp_path / "frontend_api.log").read_text()
    assert sandbox.world.get_user(user["email"]).refresh_token not in log


def test_the_quick_start_connects_every_demo_user_through_the_oauth_flow(tmp_path, sandbox, cipher):
    """`sandbox connect-users --through`, as scripts/dev.sh runs it against the served API."""
    with served_api(tmp_path, sandbox, cipher) as api:
        connect = [
            sys.executable,
            "-m",
            "sunny_pipelines.sandbox",
            "connect-users",
            "--url",
            sandbox.base_url,
        ]
        done = subprocess.run([*connect, "--through", api.base], env=api.env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    with DatabaseResource(url=api.database_url).begin() as conn:
        grants = conn.execute(select(GoogleConnection.user_id, GoogleConnection.status)).all()
    assert sorted(grants) == sorted((u["id"], "active") for u in sandbox.world.list_users())
