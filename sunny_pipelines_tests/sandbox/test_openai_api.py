"""The sandbox's OpenAI-compatible API through the real `openai` client: models, chat completions
with Structured Outputs (`chat.completions.parse`, which posts to `/v1/chat/completions` in openai
3.x), usage, authentication and each fault with the exception the client raises for it."""

from __future__ import annotations

import enum
import json
import time
from datetime import date
from typing import Literal

import jsonschema
import openai
import pydantic
import pytest
import requests
from openai.lib._pydantic import to_strict_json_schema

from sunny_pipelines.sandbox.services.openai.answer import estimate_tokens

KEY = "sunny-local-openai-key"
MODEL = "gpt-4o-mini"
SYSTEM = "Classify the document as invoice, agenda, meeting_notes or other. Answer in JSON."
INVOICE = (
    "Invoice INV-2026-0042 from Acme Supplies. Amount due: 1,250.00 EUR by 2026-02-15. "
    "Please pay the invoice by bank transfer; invoice questions go to billing@acme.example."
)
AGENDA = (
    "Agenda for the quarterly planning session. 1. Welcome. 2. Roadmap review. "
    "3. Hiring plan. Please add items to the agenda before Friday."
)
NOTES = (
    "Alice: we agreed to ship the beta on 2026-03-02.\n"
    "Bob: I will write the release notes.\n"
    "Carol: I'll book the launch review with the design team."
)


class Label(enum.StrEnum):
    invoice = "invoice"
    agenda = "agenda"
    meeting_notes = "meeting_notes"
    other = "other"


class Classification(pydantic.BaseModel):
    label: Label
    confidence: float
    summary: str
    is_invoice: bool


class ActionItem(pydantic.BaseModel):
    description: str
    owner: str | None
    due: date | None


class MeetingNotes(pydantic.BaseModel):
    title: str
    kind: Literal["standup", "planning", "review", "one_on_one"]
    speakers: list[str]
    action_items: list[ActionItem]
    priority: int = pydantic.Field(ge=1, le=5)


@pytest.fixture
def client(sandbox) -> openai.OpenAI:
    c = openai.OpenAI(base_url=sandbox.base_url + "/v1", api_key=KEY, max_retries=0, timeout=10)
    yield c
    c.close()


def classify(client: openai.OpenAI, text: str, **kwargs) -> openai.types.chat.ParsedChatCompletion:
    return client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
        response_format=Classification,
        **kwargs,
    )


# -- models and authentication ----------------------------------------------------------------------


def test_models_are_listed_and_retrieved(client):
    ids = [m.id for m in client.models.list()]
    assert {"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"} <= set(ids)
    model = client.models.retrieve("gpt-4o")
    assert (model.id, model.object, model.owned_by) == ("gpt-4o", "model", "system")
    assert model.created > 1_700_000_000


def test_a_removed_model_is_not_listed_and_not_found(client, sandbox):
    sandbox.world.openai_remove_model("gpt-4o-mini")
    assert "gpt-4o-mini" not in [m.id for m in client.models.list()]
    with pytest.raises(openai.NotFoundError) as exc:
        client.models.retrieve("gpt-4o-mini")
    with pytest.raises(openai.NotFoundError) as exc:
        classify(client, INVOICE)
    assert exc.value.code == "model_not_found"
    assert exc.value.body["type"] == "invalid_request_error"
    sandbox.world.openai_restore_model("gpt-4o-mini")
    assert classify(client, INVOICE).choices[0].message.parsed is not None


def test_an_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError, match="gpt-9"):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])


def test_a_wrong_key_is_refused_in_openai_error_shape(sandbox):
    bad = openai.OpenAI(base_url=sandbox.base_url + "/v1", api_key="sk-wrong-key-123", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.models.list()
    assert exc.value.status_code == 401
    assert exc.value.code == "invalid_api_key"
    raw = requests.get(sandbox.base_url + "/v1/models", timeout=5)
    assert raw.status_code == 401
    assert set(raw.json()["error"]) == {"message", "type", "param", "code"}


def test_the_key_is_configurable(sandbox):
    sandbox.world.openai_api_key = "sk-other"
    other = openai.OpenAI(base_url=sandbox.base_url + "/v1", api_key="sk-other", max_retries=0)
    assert other.models.list().data
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=sandbox.base_url + "/v1", api_key=KEY, max_retries=0).models.list()


# -- structured outputs -------------------------------------------------------------------------------


def test_parse_returns_the_model_deterministically(client):
    first = classify(client, INVOICE)
    second = classify(client, INVOICE)
    parsed = first.choices[0].message.parsed
    assert isinstance(parsed, Classification)
    assert parsed == second.choices[0].message.parsed
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.id != second.id
    assert first.object == "chat.completion" and first.model == MODEL
    assert first.choices[0].finish_reason == "stop"
    assert first.choices[0].message.role == "assistant"
    assert first.choices[0].message.refusal is None


@pytest.mark.parametrize(
    ("text", "label"),
    [(INVOICE, Label.invoice), (AGENDA, Label.agenda), (NOTES + " Meeting notes.", Label.meeting_notes)],
)
def test_the_label_follows_the_content(client, text, label):
    parsed = classify(client, text).choices[0].message.parsed
    assert parsed.label == label
    assert 0 <= parsed.confidence <= 1
    assert parsed.is_invoice == (label == Label.invoice)
    # The summary is the content's own first sentences.
    assert parsed.summary.split(".")[0] in text


def test_nested_schemas_are_followed_with_names_from_the_content(client):
    completion = client.chat.completions.parse(
        model="gpt-4.1-mini",
        messages=[{"role": "user", "content": NOTES}],
        response_format=MeetingNotes,
    )
    notes = completion.choices[0].message.parsed
    assert isinstance(notes, MeetingNotes)
    # The content follows the schema exactly as sent (strict: no extra properties).
    jsonschema.validate(
        json.loads(completion.choices[0].message.content), to_strict_json_schema(MeetingNotes)
    )
    assert notes.kind in ("standup", "planning", "review", "one_on_one")
    assert 1 <= notes.priority <= 5
    assert notes.action_items
    for item in notes.action_items:
        assert item.owner is None or item.owner in NOTES  # never an invented name
        assert item.description in NOTES
    assert {i.owner for i in notes.action_items} <= {"Alice", "Bob", "Carol"}
    assert notes.action_items[0].due == date(2026, 3, 2)


def test_no_name_in_the_content_gives_null(client):
    notes = (
        client.chat.completions.parse(
            model=MODEL,
            messages=[{"role": "user", "content": "the beta ships soon. nobody owns the release notes yet."}],
            response_format=MeetingNotes,
        )
        .choices[0]
        .message.parsed
    )
    assert all(i.owner is None and i.due is None for i in notes.action_items)


def test_plain_text_answers_and_usage(client):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Summarize: the budget review moved to Thursday. Bring numbers."},
    ]
    a = client.chat.completions.create(model=MODEL, messages=messages)
    b = client.chat.completions.create(model=MODEL, messages=messages)
    content = a.choices[0].message.content
    assert content == b.choices[0].message.content
    assert "the budget review moved to Thursday" in content
    other = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Other."}])
    assert other.choices[0].message.content != content
    usage = a.usage
    assert usage.prompt_tokens == estimate_tokens("You are terse.\n" + messages[1]["content"])
    assert usage.completion_tokens == estimate_tokens(content)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_structured_usage_and_several_choices(client):
    completion = classify(client, AGENDA, n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert completion.choices[0].message.parsed == classify(client, AGENDA).choices[0].message.parsed
    assert completion.usage.completion_tokens > 0 and completion.usage.prompt_tokens > 0


def test_too_few_completion_tokens_end_with_length(client):
    with pytest.raises(openai.LengthFinishReasonError):
        classify(client, INVOICE, max_completion_tokens=3)


# -- faults ----------------------------------------------------------------------------------------------


def test_rate_limit_raises_and_the_client_retries_after_retry_after(client, sandbox):
    sandbox.world.inject_fault("openai_rate_limit", count=1)
    with pytest.raises(openai.RateLimitError) as exc:
        classify(client, INVOICE)
    assert exc.value.response.headers["retry-after"] == "1"
    assert exc.value.code == "rate_limit_exceeded"

    sandbox.world.inject_fault("openai_rate_limit", count=1)
    retrying = client.with_options(max_retries=2)
    before, started = sandbox.world.openai_calls(), time.monotonic()
    assert (
        retrying.chat.completions.parse(
            model=MODEL, messages=[{"role": "user", "content": INVOICE}], response_format=Classification
        )
        .choices[0]
        .message.parsed.label
        == Label.invoice
    )
    assert time.monotonic() - started >= 0.9  # the client waited retry-after, not its own backoff
    assert sandbox.world.openai_calls() - before == 2


def test_retry_after_is_configurable(client, sandbox):
    sandbox.world.openai_retry_after_seconds = 7
    sandbox.world.inject_fault("openai_rate_limit")
    with pytest.raises(openai.RateLimitError) as exc:
        classify(client, INVOICE)
    assert exc.value.response.headers["retry-after"] == "7"


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors(client, sandbox, status):
    sandbox.world.inject_fault("openai_server_error", count=1, status=status)
    with pytest.raises(openai.InternalServerError) as exc:
        classify(client, INVOICE)
    assert isinstance(exc.value, openai.APIStatusError)
    assert exc.value.status_code == status
    assert classify(client, INVOICE).choices[0].message.parsed is not None  # count=1: once only


def test_malformed_json_fails_parse_with_a_pydantic_validation_error(client, sandbox):
    sandbox.world.inject_fault("openai_malformed")
    with pytest.raises(pydantic.ValidationError, match="json_invalid|Invalid JSON"):
        classify(client, INVOICE)
    sandbox.world.inject_fault("openai_malformed")
    raw = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": INVOICE}], response_format={"type": "json_object"}
    )
    with pytest.raises(ValueError):
        json.loads(raw.choices[0].message.content)


def test_schema_violation_fails_parse_with_a_validation_error(client, sandbox):
    sandbox.world.inject_fault("openai_schema_violation")
    with pytest.raises(pydantic.ValidationError) as exc:
        classify(client, INVOICE)
    assert exc.value.errors()[0]["loc"] == ("label",)
    # Valid JSON all the same.
    sandbox.world.inject_fault("openai_schema_violation")
    raw = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": INVOICE}],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "C",
                "schema": {
                    "type": "object",
                    "properties": {"n": {"type": "integer"}},
                    "required": ["n"],
                    "additionalProperties": False,
                },
                "strict": True,
            },
        },
    )
    value = json.loads(raw.choices[0].message.content)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(value, {"type": "object", "properties": {"n": {"type": "integer"}}})


def test_refusal(client, sandbox):
    sandbox.world.inject_fault("openai_refusal")
    message = classify(client, INVOICE).choices[0].message
    assert message.refusal and message.content is None
    assert message.parsed is None


def test_latency(client, sandbox):
    sandbox.world.inject_fault("openai_latency", latency_ms=300)
    started = time.monotonic()
    classify(client, INVOICE)
    assert time.monotonic() - started >= 0.3


def test_faults_are_cleared_and_kept_apart_from_google(client, sandbox):
    sandbox.world.inject_fault("rate_limit", count=5)  # Google's: never an OpenAI request
    assert classify(client, INVOICE).choices[0].message.parsed is not None
    sandbox.world.clear_faults()
    sandbox.world.inject_fault("openai_refusal", count=3)
    sandbox.world.clear_faults()
    assert classify(client, INVOICE).choices[0].message.refusal is None


# -- what tests look at ----------------------------------------------------------------------------------


def test_calls_are_counted_whatever_the_outcome(client, sandbox):
    world = sandbox.world
    assert world.openai_calls() == 0
    client.models.list()
    assert world.openai_calls() == 0  # listing models is no model call
    classify(client, INVOICE)
    world.inject_fault("openai_server_error")
    with pytest.raises(openai.InternalServerError):
        classify(client, AGENDA)
    assert world.openai_calls() == 2
    assert [r["status"] for r in world.openai_requests()] == [200, 500]
    assert world.openai_requests()[0]["messages"][1]["content"] == INVOICE
    assert world.openai_requests()[0]["response_format"]["json_schema"]["name"] == "Classification"
    assert requests.get(sandbox.base_url + "/sandbox/openai/requests", timeout=5).json()["count"] == 2
    world.reset_counters()
    assert world.openai_calls() == 0


def test_control_routes_and_http_faults(client, sandbox):
    base = sandbox.base_url
    assert requests.post(base + "/sandbox/openai/models/gpt-4o/remove", timeout=5).status_code == 200
    assert "gpt-4o" not in [m.id for m in client.models.list()]
    assert requests.post(base + "/sandbox/openai/models/gpt-4o/restore", timeout=5).status_code == 200
    assert "gpt-4o" in [m.id for m in client.models.list()]
    resp = requests.post(base + "/sandbox/faults", json={"kind": "openai_refusal"}, timeout=5)
    assert resp.status_code < 300
    assert classify(client, INVOICE).choices[0].message.refusal


def test_bad_requests_are_400(client):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], response_format={"type": "yaml"}
        )


def test_recursive_schemas_end(client):
    class Node(pydantic.BaseModel):
        name: str
        children: list[Node]

    Node.model_rebuild()
    completion = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": AGENDA}], response_format=Node
    )
    assert isinstance(completion.choices[0].message.parsed, Node)


def test_the_cli_sets_the_key():
    from sunny_pipelines.sandbox.__main__ import build_parser

    assert build_parser().parse_args([]).openai_api_key == KEY
    assert build_parser().parse_args(["--openai-api-key", "sk-x"]).openai_api_key == "sk-x"
