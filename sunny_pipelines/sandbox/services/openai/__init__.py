"""An OpenAI-compatible API at `/v1` (`OpenAIService`): what the real `openai` client needs for
chat completions with Structured Outputs. `client.chat.completions.parse(response_format=Model)`
(openai 3.x) posts to `/v1/chat/completions` with `response_format = {"type": "json_schema",
"json_schema": {"name", "schema", "strict": true}}`; the answers come from `answer.py`
(deterministic, content-aware, following the schema).

    GET  /v1/models                 the models not removed (`World.openai_remove_model`)
    GET  /v1/models/{model}         404 `model_not_found` once removed
    POST /v1/chat/completions       json_schema / json_object / plain text answers, `usage`, `n`,
                                    `max_completion_tokens` (finish_reason "length" when exceeded)

Authentication is `Authorization: Bearer <World.openai_api_key>` (401 `invalid_api_key` otherwise),
errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`. The package must not import
the `openai` library (it is not a dependency of the sandbox, and this package shares its name).

Faults of its own kinds (`World.inject_fault(kind, count=N)`), each for the next N chat completions:

    openai_rate_limit       429 `rate_limit_exceeded` + `retry-after` (`World.openai_retry_after_seconds`)
    openai_server_error     500 (or `status=`, e.g. 503)
    openai_latency          latency_ms added before answering
    openai_malformed        200 whose message content is not valid JSON (cut short)
    openai_schema_violation 200 with valid JSON that breaks the schema (a value outside the enum, or a
                            property of the wrong type)
    openai_refusal          200 with `message.refusal` set and `content` null, as OpenAI refuses

Control routes (no auth): `GET /sandbox/openai/requests` (the completion requests received),
`POST /sandbox/openai/models/{model}/remove` and `.../restore`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from sunny_pipelines.sandbox.core.plugin import ApiRoute, ServicePlugin, register_service
from sunny_pipelines.sandbox.services.openai.api import COMPLETION_PATHS, OpenAIApi

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.world import World

# id -> (created, owned_by), as OpenAI lists them.
DEFAULT_MODELS: dict[str, tuple[int, str]] = {
    "gpt-4o-mini": (1721172741, "system"),
    "gpt-4o": (1715367049, "system"),
    "gpt-4.1-mini": (1744318173, "system"),
    "gpt-4.1": (1744316542, "system"),
    "gpt-4.1-nano": (1744321707, "system"),
}
FAULT_KINDS = (
    "openai_rate_limit",
    "openai_server_error",
    "openai_latency",
    "openai_malformed",
    "openai_schema_violation",
    "openai_refusal",
)


@dataclass
class OpenAIFault:
    kind: str
    remaining: int
    latency_ms: int = 0
    status: int | None = None


@register_service
class OpenAIService(ServicePlugin):
    name = "openai"
    fault_kinds: ClassVar[tuple[str, ...]] = FAULT_KINDS
    direct_fault_kinds = fault_kinds

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._lock = threading.Lock()
        self._models: dict[str, tuple[int, str]] = dict(DEFAULT_MODELS)
        self._removed: set[str] = set()
        self._faults: list[OpenAIFault] = []
        self._requests: list[dict[str, Any]] = []
        self.api = OpenAIApi(self)

    def routes(self) -> list[ApiRoute]:
        return self.api.routes()

    # -- models ---------------------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"id": mid, "object": "model", "created": created, "owned_by": owner}
                for mid, (created, owner) in self._models.items()
                if mid not in self._removed
            ]

    def model(self, model_id: str) -> dict[str, Any] | None:
        return next((m for m in self.models() if m["id"] == model_id), None)

    def remove_model(self, model_id: str) -> None:
        with self._lock:
            if model_id not in self._models:
                raise KeyError(model_id)
            self._removed.add(model_id)

    def restore_model(self, model_id: str) -> None:
        """Serve a removed model again; an unknown id is added (created now, owned by the user)."""
        with self._lock:
            self._removed.discard(model_id)
            self._models.setdefault(model_id, (int(self.world.now()), "user"))

    # -- faults ----------------------------------------------------------------------------------------

    def inject_fault(
        self, kind: str, email: str | None, count: int, latency_ms: int, status: int | None
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"the openai service has no fault {kind!r}")
        with self._lock:
            self._faults.append(OpenAIFault(kind, max(int(count), 0), int(latency_ms), status))

    def take_fault(self) -> tuple[int, OpenAIFault | None]:
        """The faults of one chat completion: (latency ms, the first other fault queued)."""
        with self._lock:
            latency, taken = 0, None
            for fault in self._faults:
                if fault.remaining <= 0:
                    continue
                if fault.kind == "openai_latency":
                    latency += fault.latency_ms
                    fault.remaining -= 1
                elif taken is None:
                    taken = fault
                    fault.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining > 0]
            return latency, taken

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- what tests look at ----------------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._requests]

    def calls(self) -> int:
        """Chat completion requests received, whatever the outcome (the core's counters, so that
        `World.reset_counters` resets them too)."""
        return sum(self.world.request_count(path_prefix=p) for p in COMPLETION_PATHS)
