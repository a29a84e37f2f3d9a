"""``python -m sunny_pipelines.frontend_api --port 8790 [--host 127.0.0.1]``: serve the frontend API.

Settings come from the environment (see `FrontendSettings.from_env`); the OpenAPI document is at
`/openapi.json`, its pages at `/docs`.
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from sunny_pipelines.frontend_api.app import create_app
from sunny_pipelines.frontend_api.settings import FrontendSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sunny_pipelines.frontend_api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(FrontendSettings.from_env())
    # The access log shows request lines: the callback's carries the one-time code and state
    # (single use, and useless without the PKCE verifier), never a token.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
