"""The sandbox's in-memory world: the core pieces (clock, accounts, channels, faults, counters, push
signer) and one state-holding plugin per emulated service (`world.services`).

`World` is also the Python API the tests use (`list_users`, `calendar_truth`, `inject_fault`, ...):
thin methods that hand each call to the piece that owns it.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import Any

from sunny_pipelines.sandbox.core.accounts import (
    ACCOUNT_FAULT_KINDS,
    DEFAULT_CLIENT_ID,
    AccessToken,
    Accounts,
    OAuthError,
    User,
)
from sunny_pipelines.sandbox.core.channels import Channel, ChannelRegistry
from sunny_pipelines.sandbox.core.clock import Clock
from sunny_pipelines.sandbox.core.common import ApiError, TokenCodec, http_post
from sunny_pipelines.sandbox.core.counters import RequestCounters
from sunny_pipelines.sandbox.core.faults import QUEUED_FAULT_KINDS, FaultInjector
from sunny_pipelines.sandbox.core.plugin import ServicePlugin, registered_services
from sunny_pipelines.sandbox.core.pubsub import PubSub
from sunny_pipelines.sandbox.core.signing import (
    PUBSUB_SERVICE_ACCOUNT,
    PUBSUB_SUBSCRIPTION,
    PushSigner,
    attendee_signature,
    canonical_json,
    pubsub_envelope,
)

__all__ = ["AccessToken", "Channel", "OAuthError", "User", "World"]

DEFAULT_ATTENDEE_API_KEY = "sunny-local-attendee-key"
# base64 of b"sunny-local-attendee-webhook-secret": the project secret Attendee shows, base64.
DEFAULT_ATTENDEE_WEBHOOK_SECRET = "c3VubnktbG9jYWwtYXR0ZW5kZWUtd2ViaG9vay1zZWNyZXQ="
DEFAULT_OPENAI_API_KEY = "sunny-local-openai-key"

GOOGLE_USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"


class World:
    """Everything the sandbox knows. Thread-safe."""

    def __init__(self, seed: int = 1, services: list[str] | None = None) -> None:
        self.lock = threading.RLock()  # the services' state lock (and the channel registry's)
        self.seed = seed
        self.codec = TokenCodec()  # signs every opaque token (page tokens, sync tokens)
        self.clock = Clock()
        self.created_at = self.clock.started_at
        self.base_url = "http://127.0.0.1"  # set by the server once it knows its port
        self.accounts = Accounts(seed, self.clock)
        self.channels = ChannelRegistry(self.clock, self.lock)
        self.faults = FaultInjector()
        self.counters = RequestCounters()
        self.signer = PushSigner()
        # Push subscriptions (Gmail's watch topics), delivered with signed pushes in the background.
        self.pubsub = PubSub(self.pubsub_push, drop_rate=lambda: self.channels.notification_drop_rate)
        self._closing = threading.Event()
        # Attendee: the one project's API key and webhook secret (base64), and the Retry-After of
        # its injected 429s.
        self.attendee_api_key = DEFAULT_ATTENDEE_API_KEY
        self.attendee_webhook_secret = DEFAULT_ATTENDEE_WEBHOOK_SECRET
        self.attendee_retry_after_seconds = 1
        # OpenAI: the API key `/v1` accepts as `Authorization: Bearer <key>`, and the `retry-after`
        # (seconds) of its injected 429s.
        self.openai_api_key = DEFAULT_OPENAI_API_KEY
        self.openai_retry_after_seconds: float = 1
        available = registered_services()
        names = list(available) if services is None else services
        self.services: dict[str, ServicePlugin] = {}
        for name in names:
            service = available[name](self)
            for kind in service.watch_kinds:
                self.channels.register_kind(kind)
            self.services[name] = service

    @property
    def calendar(self) -> Any:
        """The Calendar service's state (`CalendarStore`)."""
        return self.services["calendar"].store  # type: ignore[attr-defined]

    # -- clock ----------------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox clock forward: tokens and channels expire without waiting."""
        self.clock.advance(seconds)
        for service in self.services.values():
            service.on_clock_advanced()  # e.g. Attendee's bots move on at once

    @property
    def anchor(self) -> datetime:
        return self.clock.anchor

    def sleep(self, seconds: float) -> None:
        """Injected latency; cut short when the sandbox stops."""
        self._closing.wait(seconds)

    def close(self) -> None:
        self._closing.set()
        self.channels.close()
        self.pubsub.close()
        for service in self.services.values():
            service.close()

    # -- users and grants -------------------------------------------------------------------------------

    @property
    def users(self) -> dict[str, User]:
        return self.accounts.users

    def add_user(
        self,
        email: str,
        name: str | None = None,
        timezone: str = "UTC",
        user_id: str | None = None,
        scopes: tuple[str, ...] | list[str] | None = None,
    ) -> dict[str, Any]:
        """Create a user with a grant and each service's per-user state; returns `list_users()`'s view."""
        with self.lock:
            user = self.accounts.add_user(email, name, timezone, user_id, scopes)
            for service in self.services.values():
                service.on_user_added(user)
            return self.accounts.public_view(user)

    def user_by_email(self, email: str) -> User | None:
        return self.accounts.user_by_email(email)

    def get_user(self, email_or_id: str) -> User:
        return self.accounts.get_user(email_or_id)

    def list_users(self) -> list[dict[str, Any]]:
        """Every user with a currently valid access token (issued on demand) and refresh token."""
        return self.accounts.list_users()

    def reconnect_user(self, email: str) -> dict[str, Any]:
        return self.accounts.reconnect_user(email)

    def issue_access_token(self, user: User, client_id: str = DEFAULT_CLIENT_ID) -> AccessToken:
        return self.accounts.issue_access_token(user, client_id)

    def refresh_access_token(self, refresh_token: str, client_id: str | None = None) -> dict[str, Any]:
        return self.accounts.refresh_access_token(refresh_token, client_id)

    def revoke_token(self, token: str) -> bool:
        return self.accounts.revoke_token(token)

    def authenticate(self, token: str | None) -> tuple[User, AccessToken] | None:
        return self.accounts.authenticate(token)

    def token_info(self, token: str) -> dict[str, Any] | None:
        return self.accounts.token_info(token)

    def remove_grant_scope(self, email: str, scope: str) -> None:
        """The user withdraws ``scope`` from their grant: tokeninfo no longer lists it."""
        self.accounts.remove_scope(self.get_user(email), scope)

    # -- faults -------------------------------------------------------------------------------------------

    @property
    def fault_kinds(self) -> tuple[str, ...]:
        kinds = QUEUED_FAULT_KINDS + ACCOUNT_FAULT_KINDS
        return kinds + tuple(k for s in self.services.values() for k in s.fault_kinds)

    def inject_fault(
        self,
        kind: str,
        user_email: str | None = None,
        count: int = 1,
        latency_ms: int = 0,
        status: int | None = None,
    ) -> None:
        """Make the sandbox misbehave. `user_email=None` means any user (all users for immediate kinds).

        latency / rate_limit / server_error apply to the next `count` API requests; revoke,
        expire_access_token and the services' kinds (invalidate_sync_tokens) take effect at once.
        """
        kinds = self.fault_kinds
        if kind not in kinds:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {kinds}")
        if user_email is not None and self.user_by_email(user_email) is None:
            raise KeyError(user_email)
        email = user_email.strip().lower() if user_email else None
        for service in self.services.values():
            if kind in service.direct_fault_kinds:
                service.inject_fault(kind, email, count, latency_ms, status)
                return
        if kind in QUEUED_FAULT_KINDS:
            self.faults.queue(kind, email, count, latency_ms, status)
            return
        with self.lock:
            targets = [self.get_user(email)] if email else list(self.users.values())
            for user in targets:
                if kind in ACCOUNT_FAULT_KINDS:
                    self.accounts.apply_fault(kind, user)
                else:
                    for service in self.services.values():
                        if kind in service.fault_kinds:
                            service.apply_fault(kind, user)

    def take_faults(self, email: str | None) -> tuple[int, ApiError | None]:
        return self.faults.take(email)

    def clear_faults(self) -> None:
        self.faults.clear()
        for service in self.services.values():
            service.clear_faults()

    # -- counters -----------------------------------------------------------------------------------------

    def count_request(self, email: str | None, path: str) -> None:
        self.counters.count(email, path)

    def request_count(self, email: str | None = None, path_prefix: str | None = None) -> int:
        """API requests received (any outcome), optionally for one user and/or under a decoded path prefix."""
        return self.counters.total(email, path_prefix)

    def reset_counters(self) -> None:
        self.counters.reset()

    # -- truth ----------------------------------------------------------------------------------------------

    def truth(self, service: str, email: str) -> Any:
        """What a service holds for a user (`GET /sandbox/<service>/truth?email=`), as plain JSON."""
        user = self.get_user(email)
        with self.lock:
            return json.loads(json.dumps(self.services[service].truth(user)))

    def calendar_truth(self, email: str) -> dict[str, list[dict[str, Any]]]:
        """For each of the user's calendars: what a full `events.list(singleEvents=True)` returns now."""
        return self.truth("calendar", email)

    # -- push channels ----------------------------------------------------------------------------------

    def live_channels(self, resource_key: str | None = None) -> list[Channel]:
        return self.channels.live(resource_key)

    @property
    def notification_drop_rate(self) -> float:
        return self.channels.notification_drop_rate

    def set_notification_drop_rate(self, fraction: float) -> None:
        self.channels.set_drop_rate(fraction)

    @property
    def delivered_notifications(self) -> list[dict[str, Any]]:
        return self.channels.delivered

    @property
    def dropped_notifications(self) -> int:
        return self.channels.dropped

    def wait_notifications_idle(self, timeout: float = 5.0) -> bool:
        """Block until every queued channel notification, Pub/Sub push and service push (Attendee
        webhooks) has been delivered (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        idle = self.channels.wait_idle(timeout)
        idle = self.pubsub.wait_idle(max(deadline - time.monotonic(), 0.0)) and idle
        for service in self.services.values():
            idle = service.wait_idle(max(deadline - time.monotonic(), 0.0)) and idle
        return idle

    # -- signed pushes (Pub/Sub for Gmail, Attendee webhooks) -------------------------------------------

    def pubsub_push_jwt(self, audience: str, email: str = PUBSUB_SERVICE_ACCOUNT) -> str:
        """An RS256 OIDC token like the one Pub/Sub push puts in `Authorization: Bearer ...`."""
        return self.signer.id_token(audience, email)

    def pubsub_push(
        self,
        endpoint: str,
        audience: str,
        data: Any,
        attributes: dict[str, str] | None = None,
        subscription: str = PUBSUB_SUBSCRIPTION,
        timeout: float = 10.0,
    ) -> int:
        """POST a Pub/Sub push envelope carrying `data` (JSON, base64-encoded) to `endpoint`; the status."""
        body = json.dumps(pubsub_envelope(data, attributes, subscription)).encode()
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.pubsub_push_jwt(audience)}",
            "User-Agent": GOOGLE_USER_AGENT,
        }
        return http_post(endpoint, body, headers, timeout)

    # -- Pub/Sub push subscriptions ---------------------------------------------------------------------

    def create_push_subscription(
        self, topic: str, push_endpoint: str, audience: str | None = None, name: str | None = None
    ) -> dict[str, str]:
        """Like `gcloud pubsub subscriptions create --topic T --push-endpoint E
        --push-auth-token-audience A`: every message published to `topic` (e.g. by a Gmail watch) is
        pushed, signed, to `push_endpoint`. The audience defaults to the endpoint."""
        sub = self.pubsub.create_subscription(topic, push_endpoint, audience, name)
        return {
            "name": sub.name,
            "topic": sub.topic,
            "push_endpoint": sub.push_endpoint,
            "audience": sub.audience,
        }

    def pubsub_publish(self, topic: str, data: Any, attributes: dict[str, str] | None = None) -> str:
        """Publish `data` to `topic` (pushed to its subscriptions in the background); the message id."""
        return self.pubsub.publish(topic, data, attributes)

    @property
    def delivered_pushes(self) -> list[dict[str, Any]]:
        """Every Pub/Sub push made to a subscription: its endpoint, data, status and attempts."""
        return self.pubsub.delivered

    def sign_attendee_payload(self, payload: dict[str, Any], secret_b64: str) -> str:
        """Attendee's `X-Webhook-Signature` for `payload` under the webhook secret (base64)."""
        return attendee_signature(payload, secret_b64)

    def attendee_emit(self, url: str, secret_b64: str, payload: dict[str, Any], timeout: float = 10.0) -> int:
        """Deliver a signed Attendee webhook to `url`; the status. The body is the signed canonical JSON."""
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Signature": self.sign_attendee_payload(payload, secret_b64),
            "User-Agent": "Attendee-Webhook/1.0",
        }
        return http_post(url, canonical_json(payload), headers, timeout)

    # -- Attendee (one project; the `attendee` service) -------------------------------------------------

    @property
    def attendee(self) -> Any:
        """The Attendee service (`services.attendee.AttendeeService`)."""
        return self.services["attendee"]

    def attendee_bots(self) -> list[dict[str, Any]]:
        """Every Attendee bot ever created, oldest first: the API's view plus `deleted`,
        `data_deleted`, `fatal_reason`, `meeting_seconds`, `bot_name`, `created_at`, `webhooks`."""
        return self.attendee.bots()

    def attendee_bot(self, bot_id: str) -> dict[str, Any]:
        return next(b for b in self.attendee_bots() if b["id"] == bot_id)

    def attendee_subscribe(self, url: str, triggers: list[str] | None = None) -> dict[str, Any]:
        """A project-level webhook (default triggers: bot.state_change and transcript.update), signed
        with `attendee_webhook_secret`; a bot created with its own `webhooks` uses those instead."""
        return self.attendee.subscribe(url, triggers)

    def attendee_end_meeting(self, bot_id: str) -> dict[str, Any]:
        """Test hook: the meeting ends now; the bot leaves, post-processes and ends as the clock
        moves on (`advance_clock(15)` reaches `ended`)."""
        return self.attendee.end_meeting(bot_id)

    def attendee_fail_bot(self, bot_id: str, reason: str = "process_terminated") -> dict[str, Any]:
        """End a live bot in `fatal_error` with `reason` as the event's sub type."""
        return self.attendee.fail_bot(bot_id, reason)

    @property
    def attendee_webhooks(self) -> list[dict[str, Any]]:
        """Every Attendee webhook sent (url, trigger, bot_id, payload, status, error, attempts, dropped)."""
        return list(self.attendee.sender.delivered)

    # -- OpenAI (the `openai` service, `/v1`) --------------------------------------------------------------

    @property
    def openai(self) -> Any:
        """The OpenAI service (`services.openai.OpenAIService`)."""
        return self.services["openai"]

    def openai_models(self) -> list[dict[str, Any]]:
        """What `GET /v1/models` lists now."""
        return self.openai.models()

    def openai_remove_model(self, model: str) -> None:
        """The model leaves `/v1/models`; completions with it answer 404 `model_not_found`."""
        self.openai.remove_model(model)

    def openai_restore_model(self, model: str) -> None:
        """Serve a removed model again (an unknown id is added)."""
        self.openai.restore_model(model)

    def openai_calls(self) -> int:
        """Chat completion requests received (any outcome, faults and auth failures included);
        `reset_counters` resets it."""
        return self.openai.calls()

    def openai_requests(self) -> list[dict[str, Any]]:
        """The authenticated chat completion requests, oldest first: model, messages,
        response_format and the status answered."""
        return self.openai.requests()
