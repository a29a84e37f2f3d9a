"""The AI domain through the real `openai` client against the sandbox's OpenAI-compatible API,
with PostgreSQL: classifications, faults, the budget, summaries and the model catalogue."""

from __future__ import annotations

import dagster as dg
import pytest
from sqlalchemy import select

from sunny_pipelines.ai.classify import classify_user_documents
from sunny_pipelines.ai.summaries import summarize_user_meetings
from sunny_pipelines.db.models import AiUsage, DocumentClassification, MeetingSummary, MeetingTranscript
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.drive.sync import sync_user_drive
from sunny_pipelines.gmail.sync import sync_user_mail
from sunny_pipelines.meetings.bots import refresh_bot
from sunny_pipelines.resources.ai import AIResource
from sunny_pipelines_tests.meetings.helpers import decide_for, put_meeting
from sunny_pipelines_tests.meetings.test_runs import play_meeting, soon

FAULTS = (
    "openai_malformed",
    "openai_schema_violation",
    "openai_refusal",
    "openai_server_error",
    "openai_rate_limit",
)


@pytest.fixture
def documents_of_ada(google, database, connected_users) -> dict:
    ada = connected_users[0]
    session = google.session(ada["id"])
    sync_user_drive(session, database, ada["id"])
    sync_user_mail(session, database, ada["id"])
    return ada


def classifications(database, user_id: str) -> list:
    with database.begin() as conn:
        return conn.execute(
            select(DocumentClassification.__table__).where(DocumentClassification.user_id == user_id)
        ).all()


def model_calls(sandbox) -> int:
    return sandbox.world.openai_calls()


def test_documents_and_emails_are_classified_once_and_unchanged_ones_never_again(
    ai, database, sandbox, documents_of_ada
):
    ada = documents_of_ada
    first = classify_user_documents(database, ai, ada["id"])
    rows = classifications(database, ada["id"])
    assert first.classified == len(rows) > 0 and first.failed == 0
    assert {r.source for r in rows} == {"drive", "email"}
    assert all(r.status == "classified" and r.label in ai.label_set for r in rows)
    assert all(0 <= r.confidence <= 1 and r.rationale and r.content_hash for r in rows)
    with database.begin() as conn:
        used = conn.execute(select(AiUsage.total_tokens).where(AiUsage.user_id == ada["id"])).scalars().all()
    assert len(used) == first.model_calls and sum(used) == first.tokens_used > 0

    calls = model_calls(sandbox)
    again = classify_user_documents(database, ai, ada["id"])
    assert again.model_calls == 0 and again.skipped_unchanged == len(rows)
    assert model_calls(sandbox) == calls


def test_every_fault_ends_recorded_and_is_retried_by_a_later_run(database, sandbox, documents_of_ada):
    ada = documents_of_ada
    impatient = AIResource(base_url=sandbox.base_url + "/v1", max_retries=0)
    for kind in FAULTS:
        sandbox.world.inject_fault(kind, count=1)
    first = classify_user_documents(database, impatient, ada["id"])
    assert first.failed == len(FAULTS)
    failed = [r for r in classifications(database, ada["id"]) if r.status == "failed"]
    assert len(failed) == len(FAULTS)
    assert all(r.error and r.label is None for r in failed)

    retried = classify_user_documents(database, impatient, ada["id"])
    assert retried.classified == len(FAULTS) and retried.failed == 0
    assert {r.status for r in classifications(database, ada["id"])} == {"classified"}


def test_the_label_set_is_configuration(database, sandbox, documents_of_ada):
    ada = documents_of_ada
    coarse = AIResource(base_url=sandbox.base_url + "/v1", labels="work, personal")
    classify_user_documents(database, coarse, ada["id"])
    assert {r.label for r in classifications(database, ada["id"])} <= {"work", "personal"}


def test_a_spent_budget_defers_the_rest_visibly_until_there_is_budget_again(
    database, sandbox, documents_of_ada
):
    ada = documents_of_ada
    frugal = AIResource(base_url=sandbox.base_url + "/v1", daily_token_budget=1)
    first = classify_user_documents(database, frugal, ada["id"])
    assert first.classified == 1 and first.deferred > 0
    deferred = [r for r in classifications(database, ada["id"]) if r.status == "deferred"]
    assert len(deferred) == first.deferred and all("budget" in r.error for r in deferred)
    generous = AIResource(base_url=sandbox.base_url + "/v1")
    later = classify_user_documents(database, generous, ada["id"])
    assert later.classified == first.deferred


def test_a_transcript_is_summarized_with_named_owners_and_not_again_while_unchanged(
    ai, google, database, attendee, sandbox, connected_users
):
    ada, alan, _ = connected_users
    put_meeting(sandbox, ada, [alan], start=soon())
    decide_for(google, database, attendee, [ada, alan])
    [bot] = [b for b in sandbox.world.attendee_bots() if "81234567890" in b["meeting_url"]]
    play_meeting(sandbox, bot["id"])
    refresh_bot(database, attendee.client(), bot["id"])
    owner = min(ada["id"], alan["id"])

    result = summarize_user_meetings(database, ai, owner)
    assert result.summarized == 1
    with database.begin() as conn:
        summary = conn.execute(select(MeetingSummary.__table__)).one()
        speakers = set(conn.execute(select(MeetingTranscript.speaker_name)).scalars())
    assert summary.status == "summarized" and summary.summary
    assert all(item["owner"] in speakers | {None} for item in summary.action_items)
    # The other participant's run leaves it to the first; an unchanged transcript is not sent again.
    other = max(ada["id"], alan["id"])
    assert summarize_user_meetings(database, ai, other).summarized == 0
    calls = model_calls(sandbox)
    assert summarize_user_meetings(database, ai, owner).unchanged == 1
    assert model_calls(sandbox) == calls


def test_the_catalogue_falls_back_when_the_configured_model_disappears_and_its_check_fails(
    resources, database, sandbox, documents_of_ada
):
    defs = build_defs(resources)
    job = defs.resolve_job_def("model_catalogue")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance)
        [check] = result.get_asset_check_evaluations()
        assert result.success and check.passed

        sandbox.world.openai_remove_model(resources["ai"].model)
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        [check] = result.get_asset_check_evaluations()
        assert not check.passed and "not listed" in check.description
        assert check.metadata["model_in_use"].value == resources["ai"].fallback_model
    # Work goes on with the fallback.
    classify_user_documents(database, resources["ai"], documents_of_ada["id"], limit=1)
    models = {r.model for r in classifications(database, documents_of_ada["id"])}
    assert models == {resources["ai"].fallback_model}
