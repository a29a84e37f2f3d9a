"""Revocation and offboarding against the sandbox and PostgreSQL: grants revoked at Google (which
then refuses them), tokens erased, channels stopped at Google; a deleted user leaves no row in any
table and no partition, while other users' rows stay."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import MetaData, func, select, update

from sunny_pipelines.accounts.offboarding import Offboarding, offboarding_for
from sunny_pipelines.db.models import (
    AiUsage,
    GoogleConnection,
    Meeting,
    MeetingParticipant,
    User,
    UserSession,
    WatchChannel,
)
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.sandbox.world import OAuthError
from sunny_pipelines.vocabulary import Trigger
from sunny_pipelines_tests.inbox import helpers as inbox
from sunny_pipelines_tests.runs import materialized, run_range

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
GRACE = timedelta(days=30)


def test_offboarding_decision():
    assert offboarding_for("deleted", "active", None, True, NOW, GRACE) == (Offboarding.PURGE, "user deleted")
    assert offboarding_for("active", "disconnected", None, True, NOW, GRACE)[0] == Offboarding.REVOKE
    assert offboarding_for("active", "needs_reauth", NOW - timedelta(days=29), True, NOW, GRACE) is None
    decision = offboarding_for("active", "needs_reauth", NOW - timedelta(days=31), True, NOW, GRACE)
    assert decision[0] == Offboarding.REVOKE and "2026-10-29" in decision[1]
    assert offboarding_for("active", "revoked", None, False, NOW, GRACE) is None
    assert offboarding_for("active", "active", None, True, NOW, GRACE) is None


@pytest.fixture
def push_resources(resources, database, cipher, sandbox, receiver) -> dict:
    google = GoogleResource(
        database=database, cipher=cipher, sandbox_url=sandbox.base_url, push_receiver_url=receiver
    )
    return {**resources, "google": google}


def grant(database, user_id: str):
    with database.begin() as conn:
        return conn.execute(
            select(GoogleConnection.__table__).where(GoogleConnection.user_id == user_id)
        ).one()


def set_grant(database, user_id: str, **values) -> None:
    with database.begin() as conn:
        conn.execute(update(GoogleConnection).where(GoogleConnection.user_id == user_id).values(**values))


def test_revocation_revokes_at_google_erases_tokens_and_stops_channels(
    push_resources, database, cipher, sandbox, connected_users
):
    disconnected, stale, kept = connected_users
    keys = [u["id"] for u in connected_users]
    defs = build_defs(push_resources)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        assert run_range(defs, instance, "calendar_sync", keys, Trigger.FIRST_SYNC).success
        assert [c for c in sandbox.world.live_channels() if c.user_id == disconnected["id"]]
        refresh_token = cipher.decrypt(grant(database, disconnected["id"]).refresh_token)

        # The frontend records the disconnection; another user never re-consented in 31 days, and
        # Google already dropped that grant (the revocation is refused there: not fatal).
        set_grant(database, disconnected["id"], status="disconnected")
        sandbox.world.inject_fault("revoke", stale["email"])
        set_grant(
            database,
            stale["id"],
            status="needs_reauth",
            needs_reauth_since=datetime.now(UTC) - timedelta(days=31),
        )
        assert defs.get_schedule_def("revocation_schedule").cron_schedule == "0 3 * * *"
        result = defs.resolve_job_def("revocation_job").execute_in_process(instance=instance)
        assert result.success

    for user in (disconnected, stale):
        row = grant(database, user["id"])
        assert (row.status, row.access_token, row.refresh_token) == ("revoked", None, None)
        assert row.revoked_at is not None and "tokens erased" in row.last_error
    assert "revoked at Google" in grant(database, disconnected["id"]).last_error
    assert "Google refused the revocation" in grant(database, stale["id"]).last_error
    # Google now refuses the revoked grant, and its channels are gone there and here.
    with pytest.raises(OAuthError, match="invalid_grant"):
        sandbox.world.refresh_access_token(refresh_token)
    assert not [c for c in sandbox.world.live_channels() if c.user_id == disconnected["id"]]
    with database.begin() as conn:
        live = conn.execute(
            select(WatchChannel.user_id).where(WatchChannel.status == "active").distinct()
        ).scalars()
        assert set(live) == {kept["id"]}
    assert grant(database, kept["id"]).status == "active"
    assert grant(database, kept["id"]).refresh_token is not None


def rows_per_user(database) -> dict[str, dict[str, int]]:
    """For every table with a user_id column in the database: rows per user."""
    metadata = MetaData()
    with database.begin() as conn:
        metadata.reflect(bind=conn)
        counts: dict[str, dict[str, int]] = {}
        for table in metadata.sorted_tables:
            column = table.c.get("user_id") if table.name != "users" else table.c.id
            if column is None:
                continue
            for user_id, count in conn.execute(select(column, func.count()).group_by(column)):
                counts.setdefault(str(user_id), {})[table.name] = count
    return counts


def test_offboarding_a_deleted_user_leaves_no_row_and_no_partition(
    resources, database, sandbox, connected_users
):
    leaving, staying, _ = (u["id"] for u in connected_users)
    keys = [u["id"] for u in connected_users]
    defs = build_defs(resources)
    now = datetime.now(UTC)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        for job in ("calendar_sync", "drive_sync", "email_sync"):
            assert run_range(defs, instance, job, keys, Trigger.FIRST_SYNC).success
        with database.begin() as conn:
            conn.execute(
                UserSession.__table__.insert(),
                [{"id": f"s-{u}", "user_id": u, "expires_at": now + timedelta(days=1)} for u in keys],
            )
            conn.execute(
                AiUsage.__table__.insert(),
                [
                    {"user_id": u, "day": "2026-11-29", "purpose": "classification", "model": "m"}
                    for u in keys
                ],
            )
            shared, solo = (
                conn.execute(
                    Meeting.__table__.insert()
                    .values(dedup_key=key, meeting_url=f"https://meet.google.com/{key}", start_time=now)
                    .returning(Meeting.id)
                ).scalar_one()
                for key in ("shared", "solo")
            )
            participant = {"calendar_id": "primary", "want_bot": False, "decision_code": "x", "reason": "x"}
            conn.execute(
                MeetingParticipant.__table__.insert(),
                [
                    {**participant, "meeting_id": shared, "user_id": leaving, "event_id": "e1"},
                    {**participant, "meeting_id": shared, "user_id": staying, "event_id": "e1"},
                    {**participant, "meeting_id": solo, "user_id": leaving, "event_id": "e2"},
                ],
            )
        inbox.notify(database, leaving)
        before = rows_per_user(database)
        assert {"calendar_events", "drive_files", "emails", "sync_state", "webhook_inbox"} <= set(
            before[leaving]
        )

        with database.begin() as conn:
            conn.execute(update(User).where(User.id == leaving).values(status="deleted"))
        result = defs.resolve_job_def("revocation_job").execute_in_process(instance=instance)
        assert result.success
        assert leaving not in instance.get_dynamic_partitions("users")
        assert set(instance.get_dynamic_partitions("users")) == set(keys) - {leaving}
        for asset in ("calendar_events", "drive_files", "emails"):  # history wiped, others' kept
            assert materialized(instance, asset) == set(keys) - {leaving}, asset
            history = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[leaving]), limit=10
            )
            assert not history.records, asset

    after = rows_per_user(database)
    assert leaving not in after
    for user_id in set(keys) - {leaving}:
        assert after[user_id] == before[user_id]
    with database.begin() as conn:
        assert set(conn.execute(select(Meeting.dedup_key)).scalars()) == {"shared"}
    # The grant was revoked at Google before the rows went.
    with pytest.raises(OAuthError, match="invalid_grant"):
        sandbox.world.refresh_access_token(connected_users[0]["refresh_token"])
