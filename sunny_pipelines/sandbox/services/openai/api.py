"""The `/v1` routes of the OpenAI emulator and its `/sandbox/openai/...` control routes.

OpenAI authenticates with a bearer API key (not a Google token) and answers errors as
`{"error": {"message", "type", "param", "code"}}`, so the routes take no `api=` from the core: they
do their own authentication, fault injection and request counting (the core's counters).
"""

from __future__ import annotations

import itertools
import json
import math
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from sunny_pipelines.sandbox.core.http import Request, json_response
from sunny_pipelines.sandbox.core.plugin import ApiRoute, route
from sunny_pipelines.sandbox.services.openai.answer import (
    Context,
    estimate_tokens,
    message_text,
    plain_answer,
    schema_answer,
    violate,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from sunny_pipelines.sandbox.services.openai import OpenAIService

COMPLETION_PATHS = ("/v1/chat/completions",)
MAX_CHOICES = 8
REFUSAL = "I'm sorry, but I can't help with that request."
SYSTEM_FINGERPRINT = "fp_sandbox"


class OpenAIError(Exception):
    """An error answered as OpenAI answers it."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = headers or {}


def _model_not_found(model: str) -> OpenAIError:
    return OpenAIError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


class OpenAIApi:
    def __init__(self, service: OpenAIService) -> None:
        self.service = service
        self.world = service.world
        self._ids = itertools.count(1)

    def routes(self) -> list[ApiRoute]:
        api = self._api
        return [
            route("GET", "/v1/models", api(self.list_models)),
            route("GET", "/v1/models/{model_id}", api(self.get_model)),
            # Blocking (a worker thread) only so that injected latency can simply sleep.
            route("POST", "/v1/chat/completions", api(self.chat_completion), blocking=True),
            route("GET", "/sandbox/openai/requests", self.admin_requests),
            route("POST", "/sandbox/openai/models/{model_id}/remove", self.admin_remove),
            route("POST", "/sandbox/openai/models/{model_id}/restore", self.admin_restore),
        ]

    # -- the request pipeline --------------------------------------------------------------------------

    def _api(self, handler: Callable[..., Response]) -> Callable[..., Response]:
        """Count, authenticate, then handle; OpenAI's error shape for every failure."""

        def endpoint(req: Request, **params: str) -> Response:
            self.world.count_request(None, req.path)
            request_id = f"req_sandbox{next(self._ids):08d}"
            try:
                self._authenticate(req)
                resp = handler(req, **params)
            except OpenAIError as exc:
                resp = json_response(exc.body, exc.status, exc.headers)
            resp.headers["x-request-id"] = request_id
            return resp

        return endpoint

    def _authenticate(self, req: Request) -> None:
        auth = req.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise OpenAIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if key != self.world.openai_api_key:
            shown = key[:3] + "*" * max(len(key) - 7, 0) + key[-4:] if len(key) > 7 else key
            raise OpenAIError(
                401,
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    # -- /v1/models ------------------------------------------------------------------------------------

    def list_models(self, req: Request) -> Response:
        return json_response({"object": "list", "data": self.service.models()})

    def get_model(self, req: Request, model_id: str) -> Response:
        model = self.service.model(model_id)
        if model is None:
            raise _model_not_found(model_id)
        return json_response(model)

    # -- /v1/chat/completions --------------------------------------------------------------------------

    def chat_completion(self, req: Request) -> Response:
        body = self._body(req)
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not model:
            raise OpenAIError(400, "you must provide a model parameter", param="model")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise OpenAIError(
                400, "Invalid 'messages': expected a non-empty array of messages.", param="messages"
            )
        if body.get("stream"):
            raise OpenAIError(400, "Streaming is not supported by the sandbox.", param="stream")
        schema, _strict, format_type = self._response_format(body.get("response_format"))
        entry: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "response_format": body.get("response_format"),
            "status": None,
        }
        self.service.record(entry)
        if self.service.model(model) is None:
            entry["status"] = 404
            raise _model_not_found(model)

        latency_ms, fault = self.service.take_fault()
        if latency_ms:
            self.world.sleep(latency_ms / 1000)
        if fault is not None and fault.kind == "openai_rate_limit":
            entry["status"] = 429
            raise self._rate_limited(model)
        if fault is not None and fault.kind == "openai_server_error":
            status = fault.status or 500
            entry["status"] = status
            raise OpenAIError(
                status,
                "The server had an error while processing your request. Sorry about that!"
                if status == 500
                else "The server is overloaded or not ready yet.",
                type_="server_error",
            )

        n = body.get("n") or 1
        if not isinstance(n, int) or not 1 <= n <= MAX_CHOICES:
            raise OpenAIError(400, f"Invalid 'n': expected an integer in 1..{MAX_CHOICES}.", param="n")
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        kind = fault.kind if fault is not None else None
        choices = []
        for i in range(n):
            # Choice 0 is the same whatever `n`: the salt of choice i > 0 is its index.
            ctx = Context(messages, salt=str(i) if i else "")
            choices.append(self._choice(i, ctx, schema, format_type, kind, limit))
        prompt_tokens = estimate_tokens("\n".join(message_text(m.get("content")) for m in messages))
        completion_tokens = sum(c.pop("_tokens") for c in choices)
        entry["status"] = 200
        return json_response(
            {
                "id": f"chatcmpl-sandbox{next(self._ids):012d}",
                "object": "chat.completion",
                "created": int(self.world.now()),
                "model": model,
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {
                        "reasoning_tokens": 0,
                        "audio_tokens": 0,
                        "accepted_prediction_tokens": 0,
                        "rejected_prediction_tokens": 0,
                    },
                },
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
            },
            headers={"openai-processing-ms": "1", "openai-version": "2020-10-01"},
        )

    def _choice(
        self,
        index: int,
        ctx: Context,
        schema: dict[str, Any] | None,
        format_type: str,
        fault: str | None,
        limit: Any,
    ) -> dict[str, Any]:
        content: str | None
        refusal: str | None = None
        if fault == "openai_refusal":
            content, refusal = None, REFUSAL
        elif schema is not None:
            value = schema_answer(schema, ctx)
            if fault == "openai_schema_violation":
                value = violate(schema, value)
            content = json.dumps(value, ensure_ascii=False)
        elif format_type == "json_object":
            content = json.dumps({"answer": plain_answer(ctx)}, ensure_ascii=False)
        else:
            content = plain_answer(ctx)
        if fault == "openai_malformed" and content is not None:
            content = _malformed(content)
        finish_reason = "stop"
        tokens = estimate_tokens(content or refusal or "") or 1
        if content is not None and isinstance(limit, int) and limit > 0 and tokens > limit:
            # Cut short as a model that ran out of tokens: `parse` raises LengthFinishReasonError.
            words = content.split(" ")
            content = " ".join(words[: max(math.floor(limit / 1.3), 1)])
            tokens, finish_reason = limit, "length"
        return {
            "index": index,
            "message": {"role": "assistant", "content": content, "refusal": refusal, "annotations": []},
            "logprobs": None,
            "finish_reason": finish_reason,
            "_tokens": tokens,
        }

    @staticmethod
    def _response_format(value: Any) -> tuple[dict[str, Any] | None, bool, str]:
        """(the JSON schema or None, strict, the format type) of a `response_format`."""
        if value is None:
            return None, False, "text"
        if not isinstance(value, dict) or value.get("type") not in ("text", "json_object", "json_schema"):
            raise OpenAIError(
                400,
                "Invalid 'response_format.type': expected one of 'text', 'json_object', 'json_schema'.",
                param="response_format",
            )
        if value["type"] != "json_schema":
            return None, False, value["type"]
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise OpenAIError(
                400,
                "Missing required parameter: 'response_format.json_schema.name'.",
                param="response_format",
            )
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise OpenAIError(
                400,
                "Invalid 'response_format.json_schema.schema': expected an object.",
                param="response_format",
            )
        return schema, bool(spec.get("strict")), "json_schema"

    def _rate_limited(self, model: str) -> OpenAIError:
        seconds = self.world.openai_retry_after_seconds
        shown = f"{seconds:g}"
        return OpenAIError(
            429,
            f"Rate limit reached for {model} in organization org-sandbox on requests per min (RPM): "
            f"Limit 3, Used 3, Requested 1. Please try again in {shown}s.",
            type_="requests",
            code="rate_limit_exceeded",
            headers={
                "retry-after": shown,
                "x-ratelimit-limit-requests": "3",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{shown}s",
            },
        )

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        try:
            value = json.loads(req.body or b"{}")
        except ValueError:
            raise OpenAIError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly.)",
            ) from None
        if not isinstance(value, dict):
            raise OpenAIError(400, "The request body must be a JSON object.")
        return value

    # -- control routes --------------------------------------------------------------------------------

    def admin_requests(self, req: Request) -> Response:
        return json_response({"count": self.service.calls(), "requests": self.service.requests()})

    def admin_remove(self, req: Request, model_id: str) -> Response:
        try:
            self.service.remove_model(model_id)
        except KeyError:
            return json_response(_model_not_found(model_id).body, 404)
        return json_response({"models": self.service.models()})

    def admin_restore(self, req: Request, model_id: str) -> Response:
        self.service.restore_model(model_id)
        return json_response({"models": self.service.models()})


def _malformed(content: str) -> str:
    """Cut short, so that it is not JSON any more (what a broken proxy or model might send)."""
    cut = content[: max(len(content) // 2, 1)]
    try:
        json.loads(cut)
    except ValueError:
        return cut
    return cut + "}{"
