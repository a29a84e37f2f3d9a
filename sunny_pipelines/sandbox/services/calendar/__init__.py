"""Calendar v3: the service plugin (`CalendarService`), its state (`store.CalendarStore`), its HTTP
routes (`api.CalendarApi`) and recurrence expansion (`recurrence`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sunny_pipelines.sandbox.core.channels import WatchKind
from sunny_pipelines.sandbox.core.plugin import ApiRoute, ServicePlugin, register_service
from sunny_pipelines.sandbox.services.calendar.api import CalendarApi
from sunny_pipelines.sandbox.services.calendar.store import (
    CALENDAR_LIST_WATCH,
    EVENTS_WATCH,
    CalendarStore,
)

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.core.accounts import User
    from sunny_pipelines.sandbox.seed import SeedContext
    from sunny_pipelines.sandbox.world import World

DAY = 86400


@register_service
class CalendarService(ServicePlugin):
    name = "calendar"
    error_prefixes = ("calendar",)
    # Google's Calendar channels last 7 days unless asked otherwise.
    watch_kinds = (
        WatchKind(EVENTS_WATCH, default_ttl_seconds=7 * DAY, max_ttl_seconds=30 * DAY),
        WatchKind(CALENDAR_LIST_WATCH, default_ttl_seconds=7 * DAY, max_ttl_seconds=30 * DAY),
    )
    fault_kinds = ("invalidate_sync_tokens",)

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.store = CalendarStore(world)
        self.api = CalendarApi(world, self.store)

    def routes(self) -> list[ApiRoute]:
        return self.api.routes()

    def truth(self, user: User) -> dict[str, list[dict[str, Any]]]:
        """For each of the user's calendars: what a full `events.list(singleEvents=True)` returns now."""
        return self.store.truth(user.id)

    def on_user_added(self, user: User) -> None:
        # The primary calendar's id is the user's address.
        self.store.create_calendar(user.email, user.email, user.timezone, kind="primary", owner_id=user.id)
        self.store.subscribe(user.id, user.email, "owner", primary=True)

    def seed(self, ctx: SeedContext, users: list[dict[str, Any]], per_user: int) -> None:
        from sunny_pipelines.sandbox.services.calendar.seed import seed_calendars

        seed_calendars(ctx, users, per_user)

    def apply_fault(self, kind: str, user: User) -> None:
        if kind != "invalidate_sync_tokens":
            super().apply_fault(kind, user)
        self.store.invalidate_sync_tokens(user.id)
