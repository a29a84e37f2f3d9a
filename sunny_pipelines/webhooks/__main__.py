"""``python -m sunny_pipelines.webhooks --port 8780 [--host 127.0.0.1]``: serve the receiver.

Settings come from the environment (see `WebhookSettings.from_env`).
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from sunny_pipelines.webhooks.app import create_app
from sunny_pipelines.webhooks.server import install_log_redaction, uvicorn_options
from sunny_pipelines.webhooks.settings import WebhookSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sunny_pipelines.webhooks", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8780)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--no-access-log", action="store_true", help="disable uvicorn's access log")
    args = parser.parse_args(argv)

    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=args.log_level.upper(), format=log_format)
    settings = WebhookSettings.from_env()
    app = create_app(settings)
    install_log_redaction()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        # Header/body deadlines, header size limit, keep-alive and shutdown bounds.
        **uvicorn_options(settings),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
