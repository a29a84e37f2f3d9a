"""Command line: `python -m sunny_pipelines.sandbox [serve] --port 8765 --users 3`, or
`python -m sunny_pipelines.sandbox connect-users --url http://127.0.0.1:8765`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

log = logging.getLogger("sunny_pipelines.sandbox")

_SUBCOMMANDS = ("serve", "connect-users")


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one")
    parser.add_argument("--users", type=int, default=3, help="number of seeded users")
    parser.add_argument("--events-per-user", type=int, default=20, help="top-level events seeded per user")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated world")
    parser.add_argument(
        "--notification-drop-rate",
        type=float,
        default=0.0,
        help="share of push notifications silently dropped (0..1)",
    )
    parser.add_argument(
        "--pubsub-subscription",
        action="append",
        default=[],
        type=_subscription,
        metavar="TOPIC=ENDPOINT[,AUDIENCE]",
        help="a Pub/Sub push subscription (repeatable): what a Gmail watch publishes to TOPIC "
        "(projects/P/topics/T) is pushed, signed for AUDIENCE (default: ENDPOINT), to ENDPOINT",
    )
    parser.add_argument(
        "--attendee-api-key",
        default="sunny-local-attendee-key",
        help="the key Attendee's API accepts in `Authorization: Token <key>` "
        "(default sunny-local-attendee-key)",
    )
    parser.add_argument(
        "--attendee-webhook",
        action="append",
        default=[],
        metavar="URL",
        help="a project-level Attendee webhook (repeatable): bot.state_change and transcript.update, signed",
    )
    parser.add_argument(
        "--attendee-webhook-secret",
        default=None,
        metavar="BASE64",
        help="the Attendee project's webhook signing secret, base64 (give the receiver the same one as "
        "SUNNY_ATTENDEE_WEBHOOK_SECRET; default: the sandbox's fixed local secret)",
    )
    parser.add_argument(
        "--openai-api-key",
        default="sunny-local-openai-key",
        help="the key the OpenAI-compatible API at /v1 accepts as `Authorization: Bearer <key>` "
        "(default sunny-local-openai-key)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")


def _subscription(text: str) -> tuple[str, str, str | None]:
    """`TOPIC=ENDPOINT[,AUDIENCE]` -> (topic, endpoint, audience or None)."""
    from sunny_pipelines.sandbox.core.pubsub import parse_topic

    topic, sep, rest = text.partition("=")
    endpoint, _, audience = rest.partition(",")
    try:
        if not sep or not endpoint.startswith(("http://", "https://")):
            raise ValueError("expected TOPIC=ENDPOINT[,AUDIENCE] with an http(s) endpoint")
        parse_topic(topic.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return topic.strip(), endpoint.strip(), audience.strip() or None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sunny_pipelines.sandbox",
        description="Local emulator of Google OAuth + Calendar (and friends) for many users at once. "
        "Serving is the default when no subcommand is given.",
    )
    _add_serve_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="{serve,connect-users}")
    serve = sub.add_parser("serve", help="serve the sandbox until interrupted (default)")
    _add_serve_options(serve)
    sub.add_parser(
        "connect-users",
        help="connect the sandbox's users to the app (see sunny_pipelines.sandbox.connect)",
        add_help=False,
    )
    return parser


def serve(args: argparse.Namespace) -> int:
    from sunny_pipelines.sandbox.server import SandboxServer

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server = SandboxServer(
        host=args.host,
        port=args.port,
        users=args.users,
        events_per_user=args.events_per_user,
        seed=args.seed,
        notification_drop_rate=args.notification_drop_rate,
    )
    # Attendee's project settings go in before the server answers its first request.
    server.world.attendee_api_key = args.attendee_api_key
    server.world.openai_api_key = args.openai_api_key
    if args.attendee_webhook_secret:
        server.world.attendee_webhook_secret = args.attendee_webhook_secret
    for url in args.attendee_webhook:
        server.world.attendee_subscribe(url)
        log.info("attendee webhook -> %s", url)
    server.start()
    for topic, endpoint, audience in args.pubsub_subscription:
        sub = server.world.create_push_subscription(topic, endpoint, audience)
        log.info(
            "pubsub push subscription %s: %s -> %s (audience %s)",
            sub["name"],
            topic,
            endpoint,
            sub["audience"],
        )
    log.info("sandbox serving at %s (%d users, seed %d)", server.base_url, args.users, args.seed)
    stop = threading.Event()
    # SIGTERM (docker stop, process managers) ends the loop like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "connect-users":
        # Imported lazily: it belongs to another part of the project and pulls in app dependencies.
        from sunny_pipelines.sandbox import connect

        return int(connect.main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
