"""`SandboxServer`: a seeded world served over HTTP by uvicorn from a background thread."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from sunny_pipelines.sandbox.core.app import SandboxApp
from sunny_pipelines.sandbox.world import World


class SandboxServer:
    """The sandbox, seeded and served from a background thread.

    >>> sb = SandboxServer(port=0, users=3, events_per_user=12, seed=1).start()
    >>> sb.base_url, sb.world.list_users()[0]["email"]
    >>> sb.stop()
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        users: int = 3,
        events_per_user: int = 12,
        seed: int = 1,
        notification_drop_rate: float = 0.0,
        world: World | None = None,
    ) -> None:
        if world is None:
            from sunny_pipelines.sandbox.seed import seed_world

            world = World(seed=seed)
            seed_world(world, users, events_per_user)
        self.world = world
        self.world.set_notification_drop_rate(notification_drop_rate)
        self.app = SandboxApp(world)
        # The socket is bound here, so `port=0` has its real port (and base_url) before start().
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port = int(self._sock.getsockname()[1])
        self.world.base_url = self.base_url
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self, startup_timeout: float = 10.0) -> SandboxServer:
        if self._thread is not None:
            return self
        config = uvicorn.Config(
            self.app.asgi(),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=120,  # httplib2 keeps its connections; do not close them under it
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name=f"sandbox-uvicorn-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                raise RuntimeError(f"sandbox did not start on {self.base_url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.world.close()  # wakes requests sleeping on injected latency, stops notifications
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout)
        self._server = None
        self._thread = None
        self._sock.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
