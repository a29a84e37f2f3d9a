"""``python -m sunny_pipelines.sandbox connect-users --url URL [--through FRONTEND_API_URL]``:
connect the sandbox's users.

With ``--through``, each user goes through the frontend API's Google connect flow as a browser
would (start → the sandbox's consent screen → callback, following the redirects); without it,
each user and their grant (tokens encrypted) are written straight into the app database, as if
they had completed consent.
"""

from __future__ import annotations

import argparse
import os
import sys

import requests

from sunny_pipelines.db.engine import database_url_from_env, get_engine
from sunny_pipelines.db.grants import store_google_grants
from sunny_pipelines.db.secrets import TokenCrypto


def sandbox_users(sandbox_url: str, limit: int | None = None) -> list[dict]:
    """The sandbox's users (the first ``limit``), each with a valid grant: `GET /sandbox/users`."""
    response = requests.get(sandbox_url.rstrip("/") + "/sandbox/users", timeout=30)
    response.raise_for_status()
    return response.json()[:limit] if limit else response.json()


def connect_users(sandbox_url: str, database_url: str, cipher: TokenCrypto, limit: int | None = None) -> int:
    grants = sandbox_users(sandbox_url, limit)
    with get_engine(database_url).begin() as conn:
        return store_google_grants(conn, cipher, grants)


def connect_users_through(sandbox_url: str, frontend_api_url: str, limit: int | None = None) -> int:
    """Each sandbox user completes the connect flow of the frontend API at ``frontend_api_url``."""
    users = sandbox_users(sandbox_url, limit)
    for user in users:
        with requests.Session() as browser:
            answer = browser.get(
                frontend_api_url.rstrip("/") + "/oauth/google/start",
                params={"login_hint": user["email"]},
                timeout=60,
            )
        if answer.status_code != 200:
            raise RuntimeError(f"connecting {user['email']} failed: {answer.status_code} {answer.text[:300]}")
    return len(users)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sunny_pipelines.sandbox connect-users")
    parser.add_argument("--url", required=True, help="the sandbox base URL, e.g. http://127.0.0.1:8765")
    parser.add_argument("--limit", type=int, default=None, help="connect only the first N users")
    parser.add_argument(
        "--through", default=None, help="the frontend API's base URL: connect through its OAuth flow"
    )
    args = parser.parse_args(argv)
    if args.through:
        count = connect_users_through(args.url, args.through, args.limit)
        print(f"connected {count} sandbox users through {args.through}", file=sys.stderr)
        return 0
    cipher = TokenCrypto(os.environ.get("SUNNY_TOKEN_KEY", ""))
    count = connect_users(args.url, database_url_from_env(), cipher, args.limit)
    print(f"connected {count} sandbox users", file=sys.stderr)
    return 0
