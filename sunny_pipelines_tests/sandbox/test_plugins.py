"""Services plug into the core: registration, routes, watch kinds, truth, faults; import boundaries."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import requests

from sunny_pipelines.sandbox.core.channels import WatchKind, WatchTarget
from sunny_pipelines.sandbox.core.http import Request, json_response
from sunny_pipelines.sandbox.core.plugin import (
    ApiRoute,
    ServicePlugin,
    register_service,
    registered_services,
    route,
)
from sunny_pipelines.sandbox.server import SandboxServer
from sunny_pipelines.sandbox.world import World
from sunny_pipelines_tests.sandbox.helpers import Receiver


def test_builtin_services_register_themselves() -> None:
    services = registered_services()
    assert {"google_oauth", "calendar"} <= set(services)
    world = World(seed=1)
    assert set(world.services) == set(services)
    assert {"calendar-events", "calendar-list"} <= set(world.channels.kinds)
    assert "invalidate_sync_tokens" in world.fault_kinds


class Notes(ServicePlugin):
    """A toy service, registered the way Drive or Gmail will be: routes, a watch kind, truth."""

    name = "notes"
    error_prefixes = ("notes",)
    watch_kinds = (WatchKind("notes", default_ttl_seconds=3600, max_ttl_seconds=86400),)
    fault_kinds = ("forget_notes",)

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.notes: dict[str, list[str]] = {}  # by user id

    def on_user_added(self, user: Any) -> None:
        self.notes[user.id] = []

    def routes(self) -> list[ApiRoute]:
        return [
            route("POST", "/notes/v1/notes", self.add, api="notes"),
            route("POST", "/notes/v1/notes/watch", self.watch, api="notes"),
        ]

    def add(self, req: Request) -> Any:
        with self.world.lock:
            self.notes[req.me.id].append(req.json()["text"])
            self.world.channels.notify("notes", req.me.id)
        return json_response({"ok": True})

    def watch(self, req: Request) -> Any:
        target = WatchTarget(
            "notes", req.me.id, f"notes-{req.me.id}", f"{self.world.base_url}/notes/v1/notes"
        )
        return json_response(self.world.channels.create(req.me.id, req.json(), target))

    def truth(self, user: Any) -> list[str]:
        return list(self.notes[user.id])

    def apply_fault(self, kind: str, user: Any) -> None:
        self.notes[user.id].clear()


@pytest.fixture
def notes_registered():
    register_service(Notes)
    try:
        yield
    finally:
        from sunny_pipelines.sandbox.core import plugin

        plugin._registry.pop("notes", None)


def test_a_new_service_is_one_registered_class(notes_registered, receiver: Receiver) -> None:
    with SandboxServer(users=1, events_per_user=1, seed=2) as sandbox:
        user = sandbox.world.list_users()[0]
        auth = {"Authorization": f"Bearer {user['access_token']}"}
        base = sandbox.base_url
        watch = {"id": "notes-channel", "type": "web_hook", "address": receiver.url}
        channel = requests.post(f"{base}/notes/v1/notes/watch", json=watch, headers=auth, timeout=5).json()
        assert channel["resourceId"] == f"notes-{user['id']}"
        # 1 hour, the kind's default lifetime
        assert int(channel["expiration"]) - sandbox.world.now() * 1000 == pytest.approx(3600_000, abs=5000)
        added = requests.post(f"{base}/notes/v1/notes", json={"text": "hello"}, headers=auth, timeout=5)
        assert added.status_code == 200
        states = [h["X-Goog-Resource-State"] for h in receiver.wait_for(2)]
        assert states == ["sync", "exists"]
        # The core's auth, counters and faults apply to the new API.
        assert requests.post(f"{base}/notes/v1/notes", json={"text": "x"}, timeout=5).status_code == 401
        assert sandbox.world.request_count(user["email"], "/notes/v1/") == 2
        sandbox.world.inject_fault("server_error", user_email=user["email"])
        assert (
            requests.post(f"{base}/notes/v1/notes", json={"text": "x"}, headers=auth, timeout=5).status_code
            == 503
        )
        # Unknown paths under its prefix answer in Google's error format.
        missing = requests.get(f"{base}/notes/v1/nothing", headers=auth, timeout=5)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == 404
        # Its truth is served by the core's truth endpoint.
        truth = requests.get(f"{base}/sandbox/notes/truth", params={"email": user["email"]}, timeout=5)
        assert truth.json() == ["hello"] == sandbox.world.truth("notes", user["email"])
        sandbox.world.inject_fault("forget_notes", user_email=user["email"])
        assert sandbox.world.truth("notes", user["email"]) == []


def test_services_cannot_register_twice_or_without_a_name() -> None:
    class Calendar2(ServicePlugin):
        name = "calendar"

    with pytest.raises(ValueError):
        register_service(Calendar2)

    class Nameless(ServicePlugin):
        pass

    with pytest.raises(ValueError):
        register_service(Nameless)


def test_unknown_service_truth_is_404(sandbox: SandboxServer) -> None:
    email = sandbox.world.list_users()[0]["email"]
    assert (
        requests.get(
            f"{sandbox.base_url}/sandbox/nothing/truth", params={"email": email}, timeout=5
        ).status_code
        == 404
    )
    calendar = requests.get(f"{sandbox.base_url}/sandbox/calendar/truth", params={"email": email}, timeout=5)
    assert calendar.json() == sandbox.world.calendar_truth(email)


def test_the_sandbox_imports_neither_dagster_nor_the_product() -> None:
    code = (
        "import sys\n"
        "from sunny_pipelines.sandbox.server import SandboxServer\n"
        "sandbox = SandboxServer(users=1, events_per_user=2).start(); sandbox.stop()\n"
        "mods = [m for m in sys.modules if m.startswith(('dagster', 'sunny_pipelines.'))"
        " and not m.startswith('sunny_pipelines.sandbox')]\n"
        "print(mods)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
