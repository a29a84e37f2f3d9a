"""``python -m sunny_pipelines.sandbox connect-users --url URL``: connect the sandbox's users.

Writes each sandbox user and their Google grant (tokens encrypted) into the app database, as if
each had completed Google consent in the frontend.
"""

from __future__ import annotations

import argparse
import os
import sys

import requests

from sunny_pipelines.db.engine import database_url_from_env, get_engine
from sunny_pipelines.db.grants import store_google_grants
from sunny_pipelines.db.secrets import TokenCrypto


def connect_users(sandbox_url: str, database_url: str, cipher: TokenCrypto, limit: int | None = None) -> int:
    response = requests.get(sandbox_url.rstrip("/") + "/sandbox/users", timeout=30)
    response.raise_for_status()
    grants = response.json()[:limit] if limit else response.json()
    with get_engine(database_url).begin() as conn:
        return store_google_grants(conn, cipher, grants)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sunny_pipelines.sandbox connect-users")
    parser.add_argument("--url", required=True, help="the sandbox base URL, e.g. http://127.0.0.1:8765")
    parser.add_argument("--limit", type=int, default=None, help="connect only the first N users")
    args = parser.parse_args(argv)
    cipher = TokenCrypto(os.environ.get("SUNNY_TOKEN_KEY", ""))
    count = connect_users(args.url, database_url_from_env(), cipher, args.limit)
    print(f"connected {count} sandbox users", file=sys.stderr)
    return 0
