"""How an emulated service plugs into the core.

A service is one module under `sunny_pipelines.sandbox.services` (a module or a package) that
defines a `ServicePlugin` subclass decorated with `@register_service`. The core imports every
module of that package on first use, so adding a service (Drive, Gmail, Attendee, OpenAI) is a new
module and nothing else. The plugin tells the core:

- `routes()`: its HTTP routes (`ApiRoute`); routes with `api=` get bearer authentication, fault
  injection and request counting from the core;
- `watch_kinds`: what a push channel can watch (`WatchKind`); its handlers resolve a
  `WatchTarget` and call `world.channels.create(...)`, and its state calls
  `world.channels.notify(kind, name)` when a watched collection changes;
- `truth(user)`: the `GET /sandbox/<name>/truth?email=` answer (what the service holds for a user);
- `error_prefixes`: first path segments answered in Google's JSON error format when no route matches;
- `fault_kinds` / `apply_fault`: faults that take effect at once for one user
  (e.g. `invalidate_sync_tokens`); kinds also in `direct_fault_kinds` go to `inject_fault` whole
  (count, latency, status; user or None) instead, for services that are not per user (Attendee);
- `clear_faults`, `on_clock_advanced`, `wait_idle`: hooks of `World.clear_faults`,
  `World.advance_clock` and `World.wait_notifications_idle`;
- `on_user_added(user)`: per-user state to create with a new user (e.g. the primary calendar);
- `seed(ctx, users, per_user)`: the generated data of a seeded world (`sandbox.seed`).
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from sunny_pipelines.sandbox.core.channels import WatchKind

if TYPE_CHECKING:
    from starlette.responses import Response

    from sunny_pipelines.sandbox.core.accounts import User
    from sunny_pipelines.sandbox.seed import SeedContext
    from sunny_pipelines.sandbox.world import World

Handler = Callable[..., "Response"]

SERVICES_PACKAGE = "sunny_pipelines.sandbox.services"


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str  # Starlette path, `{name}` captures one segment: "/calendar/v3/calendars/{calendar_id}"
    handler: Handler  # handler(request, **path_params) -> Response, run on the event loop
    api: str | None = None  # Google API name: bearer auth, fault injection and request counting apply
    scopes: frozenset[str] | None = None  # any one of these is required (Google API routes)
    blocking: bool = False  # the handler waits on I/O (outgoing HTTP): run it in a worker thread


def route(
    method: str,
    path: str,
    handler: Handler,
    api: str | None = None,
    scopes: frozenset[str] | None = None,
    blocking: bool = False,
) -> ApiRoute:
    return ApiRoute(method.upper(), "/" + path.strip("/"), handler, api, scopes, blocking)


class ServicePlugin:
    """Base class of an emulated service; see the module docstring."""

    name: ClassVar[str]
    error_prefixes: ClassVar[tuple[str, ...]] = ()
    watch_kinds: ClassVar[tuple[WatchKind, ...]] = ()
    fault_kinds: ClassVar[tuple[str, ...]] = ()
    direct_fault_kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, world: World) -> None:
        self.world = world

    def routes(self) -> list[ApiRoute]:
        return []

    def truth(self, user: User) -> Any:
        raise NotImplementedError(f"the {self.name} service has no truth")

    def on_user_added(self, user: User) -> None:
        pass

    def seed(self, ctx: SeedContext, users: list[dict[str, Any]], per_user: int) -> None:
        """Generate the service's data for freshly seeded `users` (as `list_users()` shows them),
        drawing from `ctx.rng` only, so that one seed always gives the same world."""

    def apply_fault(self, kind: str, user: User) -> None:
        raise ValueError(f"the {self.name} service has no fault {kind!r}")

    def inject_fault(
        self, kind: str, email: str | None, count: int, latency_ms: int, status: int | None
    ) -> None:
        raise ValueError(f"the {self.name} service has no fault {kind!r}")

    def clear_faults(self) -> None:
        pass

    def on_clock_advanced(self) -> None:
        pass

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until the service's own outgoing pushes are delivered; False on timeout."""
        return True

    def close(self) -> None:
        pass


_registry: dict[str, type[ServicePlugin]] = {}
_discovered = False
_discover_lock = threading.Lock()


def register_service(cls: type[ServicePlugin]) -> type[ServicePlugin]:
    """Class decorator: make `cls` one of the sandbox's services."""
    name = getattr(cls, "name", None)
    if not name:
        raise ValueError(f"{cls.__name__} has no service name")
    existing = _registry.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"service {name!r} registered twice ({existing.__name__}, {cls.__name__})")
    _registry[name] = cls
    return cls


def registered_services() -> dict[str, type[ServicePlugin]]:
    """Every registered service by name, after importing each module of the services package."""
    global _discovered
    with _discover_lock:
        if not _discovered:
            package = importlib.import_module(SERVICES_PACKAGE)
            for module in pkgutil.iter_modules(package.__path__, SERVICES_PACKAGE + "."):
                importlib.import_module(module.name)
            _discovered = True
    return dict(_registry)
