"""Attendee (the open-source meeting-bot API): the service plugin (`AttendeeService`), its bots
(`store.BotStore`: the state machine on the sandbox clock, transcripts), its routes (`api.AttendeeApi`)
and its signed webhooks (`webhooks.WebhookSender`).

The sandbox is one Attendee project: one API key (`World.attendee_api_key`), one webhook secret
(`World.attendee_webhook_secret`, base64, as Attendee shows it), project-level webhook
subscriptions (`World.attendee_subscribe`), and bot-level ones from the create body, which take
precedence as in Attendee. Faults of its own kinds (so that a fault meant for Attendee never
lands on a Google request, and the other way round):

    attendee_rate_limit   429 + Retry-After (`World.attendee_retry_after_seconds`) for the next N requests
    attendee_server_error 5xx (default 503) for the next N requests
    attendee_latency      latency_ms added to the next N requests
    attendee_conflict     409 for the next N creates (nothing is created)
    attendee_slow_create  the next N creates store the bot, then answer latency_ms later
    attendee_fatal_error  the user's live bots (every live bot without a user) end in fatal_error;
                          with none live, the user's next bot fails while joining
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any, ClassVar

from sunny_pipelines.sandbox.core.faults import FaultInjector
from sunny_pipelines.sandbox.core.plugin import ApiRoute, ServicePlugin, register_service
from sunny_pipelines.sandbox.services.attendee.api import AttendeeApi
from sunny_pipelines.sandbox.services.attendee.store import (
    DEFAULT_MEETING_SECONDS,
    JOINED_RECORDING,
    JOINING,
    MEETING_SECONDS_METADATA_KEY,
    Bot,
    BotStore,
)
from sunny_pipelines.sandbox.services.attendee.webhooks import WebhookSender

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.core.accounts import User
    from sunny_pipelines.sandbox.world import World

TICK_SECONDS = 0.5  # how often the background ticker plays the bots forward (real time)
FATAL_REASON = "process_terminated"
_QUEUED = {
    "attendee_rate_limit": "rate_limit",
    "attendee_server_error": "server_error",
    "attendee_latency": "latency",
}


@register_service
class AttendeeService(ServicePlugin):
    name = "attendee"
    fault_kinds: ClassVar[tuple[str, ...]] = (
        *_QUEUED,
        "attendee_conflict",
        "attendee_slow_create",
        "attendee_fatal_error",
    )
    direct_fault_kinds = fault_kinds

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.faults = FaultInjector()  # the core's queued faults, kept apart from Google's
        self._fault_lock = threading.Lock()
        self._conflicts = 0
        self._slow_creates: list[int] = []  # delay (ms) of each of the next creates
        self._armed_fatal: list[str | None] = []  # user emails (None: anyone) whose next bot fails
        self._subscriptions: list[dict[str, Any]] = []
        self._closing = threading.Event()
        self.sender = WebhookSender(
            self._post, lambda: world.notification_drop_rate, world.now, self._closing
        )
        self.store = BotStore(world.seed, world.lock, world.now, self._emit)
        self.api = AttendeeApi(self)
        self._ticker: threading.Thread | None = None

    def routes(self) -> list[ApiRoute]:
        return self.api.routes()

    # -- webhooks ---------------------------------------------------------------------------------------

    def subscribe(self, url: str, triggers: list[str] | None = None) -> dict[str, Any]:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
        sub = {"url": url, "triggers": list(triggers or ["bot.state_change", "transcript.update"])}
        with self.world.lock:
            self._subscriptions = [s for s in self._subscriptions if s["url"] != url] + [sub]
        return dict(sub)

    def subscriptions(self) -> list[dict[str, Any]]:
        with self.world.lock:
            return [dict(s) for s in self._subscriptions]

    def _emit(self, bot: Bot, trigger: str, data: dict[str, Any]) -> None:
        """Queue `trigger` for every subscription of the bot (its own ones, else the project's)."""
        targets = bot.webhooks or self._subscriptions
        for sub in targets:
            if trigger in sub["triggers"]:
                self.sender.enqueue(sub["url"], WebhookSender.payload(bot.id, bot.metadata, trigger, data))

    def _post(self, url: str, payload: dict[str, Any]) -> int:
        return self.world.attendee_emit(url, self.world.attendee_webhook_secret, payload, timeout=5.0)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        return self.sender.wait_idle(timeout)

    # -- the clock --------------------------------------------------------------------------------------

    def on_clock_advanced(self) -> None:
        with self.world.lock:
            self.store.advance_all()

    def _ensure_ticker(self) -> None:
        # Started with the first bot: worlds without bots (most tests) need no thread.
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="sandbox-attendee-clock", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._closing.wait(TICK_SECONDS):
            self.on_clock_advanced()

    def meeting_seconds(self, metadata: dict[str, Any] | None, leave_settings: Any) -> float:
        seconds = float(DEFAULT_MEETING_SECONDS)
        if metadata and isinstance(metadata.get(MEETING_SECONDS_METADATA_KEY), int | float | str):
            with contextlib.suppress(ValueError):
                seconds = float(metadata[MEETING_SECONDS_METADATA_KEY])
        if isinstance(leave_settings, dict) and isinstance(leave_settings.get("max_uptime_seconds"), int):
            seconds = min(seconds, float(leave_settings["max_uptime_seconds"]))
        return max(seconds, 0.0)

    # -- faults -----------------------------------------------------------------------------------------

    def inject_fault(
        self, kind: str, email: str | None, count: int, latency_ms: int, status: int | None
    ) -> None:
        if kind in _QUEUED:
            self.faults.queue(_QUEUED[kind], None, count, latency_ms, status)
        elif kind == "attendee_conflict":
            with self._fault_lock:
                self._conflicts += max(count, 0)
        elif kind == "attendee_slow_create":
            with self._fault_lock:
                self._slow_creates.extend([max(latency_ms, 0)] * max(count, 0))
        elif kind == "attendee_fatal_error":
            with self.world.lock:
                live = [b for b in self.store.bots.values() if b.active and self._belongs(b, email)]
                for bot in live:
                    self.store.fail(bot, FATAL_REASON)
                if not live:
                    self._armed_fatal.append(email)
        else:
            raise ValueError(f"the attendee service has no fault {kind!r}")

    def clear_faults(self) -> None:
        self.faults.clear()
        with self._fault_lock:
            self._conflicts = 0
            self._slow_creates.clear()
            self._armed_fatal.clear()

    def take_conflict(self) -> bool:
        with self._fault_lock:
            if self._conflicts > 0:
                self._conflicts -= 1
                return True
            return False

    def take_slow_create(self) -> int:
        with self._fault_lock:
            return self._slow_creates.pop(0) if self._slow_creates else 0

    def arm_fatal_error(self, bot: Bot) -> None:
        """Called with the world lock held, right after `bot` was created."""
        self._ensure_ticker()
        for i, email in enumerate(self._armed_fatal):
            if self._belongs(bot, email):
                del self._armed_fatal[i]
                bot.fail_on_join = FATAL_REASON
                return

    def _belongs(self, bot: Bot, email: str | None) -> bool:
        """Whether the bot is the user's: its metadata names the user by id or email."""
        if email is None:
            return True
        user = self.world.user_by_email(email)
        meta = bot.metadata or {}
        ids = {
            str(meta.get("user_id")),
            str(meta.get("user_email", "")).lower(),
            str(meta.get("email", "")).lower(),
        }
        return email in ids or (user is not None and user.id in ids)

    # -- what tests look at -----------------------------------------------------------------------------

    def bots(self) -> list[dict[str, Any]]:
        """Every bot ever created (deleted ones too), oldest first."""
        with self.world.lock:
            self.store.advance_all()
            return [b.truth() for b in sorted(self.store.bots.values(), key=lambda b: b.seq)]

    def truth(self, user: User) -> list[dict[str, Any]]:
        """The user's bots (those whose metadata names the user)."""
        return [b for b in self.bots() if self._belongs(self.store.bots[b["id"]], user.email)]

    def end_meeting(self, bot_id: str) -> dict[str, Any]:
        """The meeting ends now: a joining or recording bot leaves (then post-processes and ends)."""
        with self.world.lock:
            self.store.advance_all()
            bot = self.store.bots[bot_id]
            if bot.state not in (JOINING, JOINED_RECORDING):
                raise ValueError(f"bot {bot_id} is {bot.state}, not in a meeting")
            self.store.end_meeting(bot)
            return bot.truth()

    def fail_bot(self, bot_id: str, reason: str = FATAL_REASON) -> dict[str, Any]:
        with self.world.lock:
            self.store.advance_all()
            bot = self.store.bots[bot_id]
            if not bot.active:
                raise ValueError(f"bot {bot_id} has already ended ({bot.state})")
            self.store.fail(bot, reason)
            return bot.truth()

    def close(self) -> None:
        self._closing.set()
