"""``python -m sunny_pipelines.db upgrade|downgrade|revision -m MSG`` on SUNNY_DATABASE_URL."""

from __future__ import annotations

import argparse
import sys

from sunny_pipelines.db import migrate
from sunny_pipelines.db.engine import database_url_from_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sunny_pipelines.db", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upgrade", help="migrate to a revision (default head)")
    up.add_argument("revision", nargs="?", default="head")
    down = sub.add_parser("downgrade", help="migrate down to a revision (default base)")
    down.add_argument("revision", nargs="?", default="base")
    rev = sub.add_parser("revision", help="autogenerate a migration from the models")
    rev.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)

    url = database_url_from_env()
    if args.command == "upgrade":
        migrate.upgrade(url, args.revision)
    elif args.command == "downgrade":
        migrate.downgrade(url, args.revision)
    else:
        migrate.revision(args.message, url)
    # The URL may hold a password: print only the backend and database name.
    print(f"{args.command} done on {url.split('://')[0]}://…/{url.rsplit('/', 1)[-1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
