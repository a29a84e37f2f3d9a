"""Token refresh and validation against the sandbox's OAuth endpoints and PostgreSQL: near-expiry
tokens refreshed and persisted, `invalid_grant` leading to re-consent (channels stopped, syncs
skipping the user with the reason, reconnection reopening them), transient outages retried
without a status change, lost scopes found; and the decisions on their own."""

import logging
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from google.auth.exceptions import RefreshError, TransportError
from sqlalchemy import select, update

from sunny_pipelines.accounts import tokens
from sunny_pipelines.accounts.tokens import Action, Outcome, refresh_failure, refresh_user, token_verdict
from sunny_pipelines.db.grants import store_google_grants, unusable_reason
from sunny_pipelines.db.models import GoogleConnection, WatchChannel
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import REQUIRED_SCOPES, GoogleScope, Trigger
from sunny_pipelines_tests.inbox import helpers as inbox
from sunny_pipelines_tests.runs import partitions_materialized, run_range

CLIENT = "sunny-local"
ALL_SCOPES = " ".join(REQUIRED_SCOPES)


# -- decisions ---------------------------------------------------------------------------------------


def test_token_verdict():
    ours = {"aud": CLIENT, "scope": ALL_SCOPES}
    assert token_verdict(ours, CLIENT, REQUIRED_SCOPES, refreshed=False).action == Action.VALID
    # Older tokeninfo answers name the client `issued_to`.
    legacy = {"issued_to": CLIENT, "scope": ALL_SCOPES}
    assert token_verdict(legacy, CLIENT, REQUIRED_SCOPES, refreshed=False).action == Action.VALID
    # Unknown token, or another client's: refresh with ours and look again; then re-consent.
    assert token_verdict(None, CLIENT, REQUIRED_SCOPES, refreshed=False).action == Action.REFRESH
    assert token_verdict(None, CLIENT, REQUIRED_SCOPES, refreshed=True).action == Action.REAUTH
    foreign = {"aud": "someone-else", "scope": ALL_SCOPES}
    assert token_verdict(foreign, CLIENT, REQUIRED_SCOPES, refreshed=False).action == Action.REFRESH
    verdict = token_verdict(foreign, CLIENT, REQUIRED_SCOPES, refreshed=True)
    assert verdict.action == Action.REAUTH and "someone-else" in verdict.reason
    # A withdrawn scope cannot come back with a refresh.
    no_gmail = {"aud": CLIENT, "scope": ALL_SCOPES.replace(GoogleScope.GMAIL, "")}
    verdict = token_verdict(no_gmail, CLIENT, REQUIRED_SCOPES, refreshed=False)
    assert verdict == tokens.Verdict(Action.REAUTH, f"missing scope {GoogleScope.GMAIL}")


def test_refresh_failures_are_classified():
    invalid_grant = RefreshError(
        "invalid_grant: Token has been expired or revoked.",
        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
        retryable=False,
    )
    assert refresh_failure(invalid_grant).outcome == Outcome.NEEDS_REAUTH
    assert "invalid_grant" in refresh_failure(invalid_grant).reason
    outage = RefreshError("server_error: unavailable", {"error": "server_error"}, retryable=True)
    assert refresh_failure(outage).outcome == Outcome.TRANSIENT
    assert refresh_failure(TransportError("connection refused")).outcome == Outcome.TRANSIENT
    # Our client's credentials refused: not the user's fault, their status must not change.
    ours = RefreshError("invalid_client: Unauthorized", {"error": "invalid_client"}, retryable=False)
    assert refresh_failure(ours).outcome == Outcome.FAILED
    assert tokens.backoff_delays(4, 2) == [2, 4, 8]


def test_unusable_reason():
    assert unusable_reason("active", "active", None) is None
    assert unusable_reason("active", "needs_reauth", "invalid_grant: gone") == (
        "Google connection is needs_reauth: invalid_grant: gone"
    )
    assert unusable_reason("deleted", "active", None) == "user is deleted"
    assert unusable_reason("active", None, None) == "no Google connection"


# -- against the sandbox -------------------------------------------------------------------------------


def grant(database, user_id: str):
    with database.begin() as conn:
        return conn.execute(
            select(GoogleConnection.__table__).where(GoogleConnection.user_id == user_id)
        ).one()


def expire_in(database, user_ids: list[str], delta: timedelta) -> None:
    with database.begin() as conn:
        conn.execute(
            update(GoogleConnection)
            .where(GoogleConnection.user_id.in_(user_ids))
            .values(expires_at=datetime.now(UTC) + delta)
        )


def run_job(defs, name: str, instance=None) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(name)
    if instance is not None:
        return job.execute_in_process(instance=instance, raise_on_error=False)
    with dg.instance_for_test() as fresh:
        return job.execute_in_process(instance=fresh, raise_on_error=False)


def op_metadata(result: dg.ExecuteInProcessResult) -> dict:
    for event in result.all_events:
        if event.event_type_value == "STEP_OUTPUT":
            return {k: v.value for k, v in event.event_specific_data.metadata.items()}
        if event.event_type_value == "STEP_FAILURE":
            return {k: v.value for k, v in event.event_specific_data.user_failure_data.metadata.items()}
    raise AssertionError("no output or failure")


def test_near_expiry_tokens_are_refreshed_and_persisted_far_ones_untouched(
    resources, database, cipher, sandbox, connected_users
):
    soon, later, far = (u["id"] for u in connected_users)
    expire_in(database, [soon], timedelta(minutes=10))
    expire_in(database, [later], timedelta(minutes=44))
    expire_in(database, [far], timedelta(hours=2))
    before = {u: grant(database, u) for u in (soon, later, far)}
    defs = build_defs(resources)
    schedule = defs.get_schedule_def("token_refresh_schedule")
    assert schedule.cron_schedule == "*/30 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING

    result = run_job(defs, "token_refresh_job")
    assert result.success
    metadata = op_metadata(result)
    assert (metadata["refreshed"], metadata["needs_reauth"], metadata["transient"]) == (2, 0, 0)
    for user_id in (soon, later):
        row = grant(database, user_id)
        token = cipher.decrypt(row.access_token)
        assert token != cipher.decrypt(before[user_id].access_token)
        assert token not in row.access_token  # encrypted at rest
        assert row.expires_at > datetime.now(UTC) + timedelta(minutes=55)
        assert row.last_refreshed_at is not None and row.status == "active"
        # The new token is the one Google now accepts.
        assert sandbox.world.authenticate(token) is not None
    assert grant(database, far).access_token == before[far].access_token
    assert grant(database, far).last_refreshed_at is None


@pytest.fixture
def push_resources(resources, database, cipher, sandbox, receiver) -> dict:
    google = GoogleResource(
        database=database, cipher=cipher, sandbox_url=sandbox.base_url, push_receiver_url=receiver
    )
    return {**resources, "google": google}


def active_channels(database, user_id: str) -> list:
    with database.begin() as conn:
        return conn.execute(
            select(WatchChannel.id).where(WatchChannel.user_id == user_id, WatchChannel.status == "active")
        ).all()


def test_invalid_grant_means_reauth_channels_stopped_syncs_skip_until_reconnected(
    push_resources, database, cipher, sandbox, connected_users
):
    gone, ok, _ = (u["id"] for u in connected_users)
    keys = [u["id"] for u in connected_users]
    defs = build_defs(push_resources)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        assert run_range(defs, instance, "calendar_sync", keys, Trigger.FIRST_SYNC).success
        channels_before = active_channels(database, gone)
        assert channels_before
        live_at_google = {c.id for c in sandbox.world.live_channels() if c.user_id == gone}
        assert live_at_google

        sandbox.world.inject_fault("revoke", connected_users[0]["email"])
        expire_in(database, keys, timedelta(minutes=5))
        result = run_job(defs, "token_refresh_job", instance)
        assert result.success  # the user's withdrawal is not the run's failure
        metadata = op_metadata(result)
        assert (metadata["refreshed"], metadata["needs_reauth"]) == (2, 1)
        assert gone in metadata["users"] and "invalid_grant" in metadata["users"][gone]

        row = grant(database, gone)
        assert row.status == "needs_reauth" and row.needs_reauth_since is not None
        assert row.last_error.startswith("token refresh refused: invalid_grant")
        for token in (cipher.decrypt(row.access_token), cipher.decrypt(row.refresh_token)):
            assert token not in row.last_error
        assert active_channels(database, gone) == []
        assert grant(database, ok).status == "active"

        # A later sync skips the user, says why, and rejects their notifications; others sync.
        row_id = inbox.notify(database, gone)
        result = run_range(defs, instance, "calendar_sync", keys, Trigger.BACKFILL)
        assert result.success
        assert gone not in partitions_materialized(result)
        assert ok in partitions_materialized(result)
        observed = [
            e.event_specific_data.asset_observation
            for e in result.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
        ]
        assert [(o.partition, o.metadata["skipped"].value) for o in observed] == [
            (gone, f"Google connection is needs_reauth: {row.last_error}")
        ]
        assert any(
            "skipped 1 users without a usable Google grant: " + gone in entry.user_message
            for entry in instance.all_logs(result.run_id)
        )
        rejected = inbox.inbox_row(database, row_id)
        assert rejected.status == "rejected" and "needs_reauth" in rejected.error

        # Re-consent reactivates the grant; the next sync reopens the channels.
        with database.begin() as conn:
            store_google_grants(conn, cipher, [sandbox.world.reconnect_user(connected_users[0]["email"])])
        assert grant(database, gone).status == "active"
        assert grant(database, gone).needs_reauth_since is None
        result = run_range(defs, instance, "calendar_sync", [gone], Trigger.BACKFILL)
        assert result.success and partitions_materialized(result) == [gone]
        reopened = active_channels(database, gone)
        assert reopened and not {c.id for c in reopened} & {c.id for c in channels_before}


def test_a_transient_token_outage_is_retried_and_changes_no_status(
    resources, database, sandbox, connected_users, monkeypatch
):
    user = connected_users[0]
    # google-auth retries a 5xx three times itself; the fourth answer fails our second attempt's
    # first request, and the fifth succeeds.
    sandbox.world.inject_fault("token_server_error", user["email"], count=4)
    result = refresh_user(
        logging.getLogger(__name__),
        resources["google"],
        database,
        user["id"],
        attempts=3,
        backoff_seconds=0.1,
    )
    assert result.outcome == Outcome.REFRESHED
    assert grant(database, user["id"]).status == "active"

    # A persistent outage: reported (the run fails naming the user), the grant stays active.
    monkeypatch.setattr(tokens, "ATTEMPTS", 2)
    monkeypatch.setattr(tokens, "BACKOFF_SECONDS", 0.1)
    expire_in(database, [user["id"]], timedelta(minutes=5))
    sandbox.world.inject_fault("token_server_error", user["email"], count=100)
    result = run_job(build_defs(resources), "token_refresh_job")
    assert not result.success
    failure = result.failure_data_for_node("refresh_expiring_tokens")
    assert user["id"] in failure.error.message and "transient" in failure.error.message
    metadata = op_metadata(result)
    assert metadata["transient"] == 1 and metadata["refreshed"] == 0
    row = grant(database, user["id"])
    assert row.status == "active" and row.last_error is None


def test_validation_finds_lost_scopes_and_revoked_grants(
    resources, database, cipher, sandbox, connected_users
):
    lost_scope, expired, revoked = connected_users
    sandbox.world.remove_grant_scope(lost_scope["email"], GoogleScope.GMAIL)
    sandbox.world.inject_fault("expire_access_token", expired["email"])
    sandbox.world.inject_fault("revoke", revoked["email"])
    defs = build_defs(resources)
    assert defs.get_schedule_def("token_validation_schedule").cron_schedule == "0 5 * * *"

    result = run_job(defs, "token_validation_job")
    assert result.success
    metadata = op_metadata(result)
    # The sandbox's connected tokens were issued to its own client: refreshed with ours, then valid.
    assert (metadata["refreshed"], metadata["needs_reauth"]) == (1, 2)

    row = grant(database, lost_scope["id"])
    assert row.status == "needs_reauth"
    assert row.last_error == f"token validation: missing scope {GoogleScope.GMAIL}"
    assert GoogleScope.GMAIL not in row.scopes and row.last_validated_at is not None

    row = grant(database, expired["id"])
    assert row.status == "active" and row.last_validated_at is not None
    assert sandbox.world.token_info(cipher.decrypt(row.access_token))["aud"] == CLIENT

    row = grant(database, revoked["id"])
    assert row.status == "needs_reauth"
    assert row.last_error.startswith("token validation: refresh refused: invalid_grant")

    # Only the remaining active grant is validated next time, and it is valid as it stands.
    result = run_job(defs, "token_validation_job")
    assert result.success and op_metadata(result)["valid"] == 1
