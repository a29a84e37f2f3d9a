"""Running the whole stack for end-to-end tests and benchmarks: a Dagster home with the
project's dagster.yaml, and long-running processes (daemon, `dagster dev`) started and stopped
cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from sunny_pipelines.db.engine import PROJECT_ROOT
from sunny_pipelines_tests import token_leaks
from sunny_pipelines_tests.google_clients import GMAIL_TOPIC

DEPLOY = PROJECT_ROOT / "deploy"


def dagster_home(
    directory: Path, user_ids: Sequence[str] = (), config: Path = PROJECT_ROOT / "dagster.yaml"
) -> Path:
    """A Dagster home using the project's dagster.yaml (or ``config``), with ``user_ids`` as
    `users` partitions."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(config, directory / "dagster.yaml")
    token_leaks.watch_dagster_home(directory)
    if user_ids:
        with dg.DagsterInstance.from_config(str(directory)) as instance:
            instance.add_dynamic_partitions("users", list(user_ids))
    return directory


def deploy_dagster_home(directory: Path, user_ids: Sequence[str] = ()) -> Path:
    """A Dagster home using the production instance file, deploy/dagster.yaml: its storage is
    the PostgreSQL database named by DAGSTER_PG_URL, which must be set."""
    return dagster_home(directory, user_ids, DEPLOY / "dagster.yaml")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def app_env(
    *,
    home: Path,
    database_url: str,
    token_key: str,
    sandbox_url: str,
    webhook_url: str = "",
    gmail_topic: str = "",
) -> dict[str, str]:
    """The environment the code location reads its resources from."""
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SUNNY_DATABASE_URL": database_url,
        "SUNNY_TOKEN_KEY": token_key,
        "SUNNY_SANDBOX_URL": sandbox_url,
        "SUNNY_ATTENDEE_URL": sandbox_url,
        "SUNNY_AI_BASE_URL": sandbox_url + "/v1",
        "SUNNY_WEBHOOK_BASE_URL": webhook_url,
        "SUNNY_GMAIL_PUBSUB_TOPIC": gmail_topic,
        "PYTHONUNBUFFERED": "1",
    }


def dagster_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / args[0]), *args[1:]]


@contextmanager
def running(
    command: list[str],
    env: dict[str, str],
    log_path: Path,
    ready: Callable[[], bool] | None = None,
    timeout: float = 120.0,
) -> Iterator[subprocess.Popen]:
    """Run ``command`` (in its own process group) until the block ends; wait for ``ready``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    token_leaks.watch_log_file(log_path)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while ready is not None and not ready():
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command[0]} not ready after {timeout:.0f}s; see {log_path}")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_for(condition: Callable[[], object], timeout: float, interval: float = 0.05) -> float:
    """Poll ``condition`` until truthy; returns the seconds waited. Raises TimeoutError."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"condition not met after {timeout:.0f}s")
        time.sleep(interval)
    return time.monotonic() - started


@dataclass
class Stack:
    home: Path
    daemon_pid: int
    log: Path

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = 120) -> None:
        try:
            wait_for(condition, timeout=timeout, interval=0.2)
        except TimeoutError:
            raise AssertionError(
                f"{what} never happened; daemon log:\n" + self.log.read_text()[-5000:]
            ) from None


@contextmanager
def daemon_stack(
    tmp_path: Path, database: Any, cipher: Any, sandbox: Any, users: list[dict], receiver: str
) -> Iterator[Stack]:
    """A Dagster daemon (sensors, schedules, run launcher) running the code location on its own
    Dagster home, reading the test database, the sandbox and the receiver, with ``users`` as
    `users` partitions."""
    home = dagster_home(tmp_path / "dagster_home", [u["id"] for u in users])
    env = app_env(
        home=home,
        database_url=database.url,
        token_key=cipher.key,
        sandbox_url=sandbox.base_url,
        webhook_url=receiver,
        gmail_topic=GMAIL_TOPIC,
    )
    log = tmp_path / "daemon.log"
    with running(dagster_command("dagster-daemon", "run", "-w", "workspace.yaml"), env, log) as daemon:
        yield Stack(home, daemon.pid, log)


@contextmanager
def production_stack(
    tmp_path: Path,
    database: Any,
    cipher: Any,
    sandbox: Any,
    users: list[dict],
    receiver: str,
    dagster_pg_url: str,
) -> Iterator[Stack]:
    """The production layout (deploy/): Dagster's storage on PostgreSQL (``dagster_pg_url``),
    the code location served by `dagster api grpc` (which also starts the run workers), and a
    daemon reading deploy/workspace.yaml, which points at that server."""
    home = deploy_dagster_home(tmp_path / "dagster_home", [u["id"] for u in users])
    port = free_port()
    env = {
        **app_env(
            home=home,
            database_url=database.url,
            token_key=cipher.key,
            sandbox_url=sandbox.base_url,
            webhook_url=receiver,
            gmail_topic=GMAIL_TOPIC,
        ),
        "DAGSTER_PG_URL": dagster_pg_url,
        "DAGSTER_GRPC_HOST": "127.0.0.1",
        "DAGSTER_GRPC_PORT": str(port),
    }
    code_server = dagster_command(
        "dagster", "api", "grpc", "-m", "sunny_pipelines.definitions", "-h", "127.0.0.1", "-p", str(port)
    )
    daemon = dagster_command("dagster-daemon", "run", "-w", str(DEPLOY / "workspace.yaml"))
    log = tmp_path / "daemon.log"
    with (
        running(code_server, env, tmp_path / "code_server.log", ready=lambda: accepts_connections(port)),
        running(daemon, env, log) as daemon_process,
    ):
        yield Stack(home, daemon_process.pid, log)


@dataclass
class DevStack(Stack):
    """`dagster dev`: the webserver (the Dagster UI at ``webserver``) and the daemon, as the quick
    start runs them. ``daemon_pid`` is `dagster dev`'s process group, run workers included."""

    webserver: str


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def dev_stack(
    home: Path,
    log: Path,
    database: Any,
    cipher: Any,
    sandbox: Any,
    receiver: str,
    user_ids: Sequence[str] = (),
) -> Iterator[DevStack]:
    """The quick start's `dagster dev` (webserver and daemon) on a free port, with the project's
    dagster.yaml and pool limits in the Dagster home ``home``, reading the test database, the
    sandbox and the receiver. With no ``user_ids`` the `users` partitions are left to the
    connected-users sensor, as in the quick start."""
    from sunny_pipelines.pools import apply_pool_limits

    dagster_home(home, user_ids)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        apply_pool_limits(instance)
    env = app_env(
        home=home,
        database_url=database.url,
        token_key=cipher.key,
        sandbox_url=sandbox.base_url,
        webhook_url=receiver,
        gmail_topic=GMAIL_TOPIC,
    )
    port = free_port()
    webserver = f"http://127.0.0.1:{port}"
    command = dagster_command("dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port))
    # The webserver answers /server_info once it has loaded the code location.
    with running(command, env, log, ready=lambda: http_ok(webserver + "/server_info"), timeout=180) as dev:
        yield DevStack(home, dev.pid, log, webserver)
