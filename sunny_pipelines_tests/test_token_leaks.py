"""The token-leak check itself (`token_leaks.py`): a token written where it must not be is
found, named by place and fingerprint, never printed. Each test leaks on purpose, asks the
session's watch what the teardown check would report, then cleans up so its own check passes."""

import logging
import os
from pathlib import Path

import dagster as dg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update

from sunny_pipelines.db.engine import PROJECT_ROOT
from sunny_pipelines.db.models import GoogleConnection, SyncState, WebhookInbox
from sunny_pipelines_tests.token_leaks import (
    ENCRYPTED,
    PLAIN,
    Leak,
    TokenWatch,
    find_leaks,
    fingerprint,
    watch_log_file,
)

ACCESS = "ya29.sbx-" + "A1b2C3d4" * 6
REFRESH = "1//sbx-" + "0123456789abcdef" * 2


def test_find_leaks_names_the_place_and_a_fingerprint_never_the_token():
    # The shortest Fernet ciphertext (one block), made with a key nobody told the check about.
    encrypted = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    texts = [
        ("log a", f"refresh failed for token {ACCESS}"),
        ("log b", "POST /token refresh_token=1%2F%2Fsbx-" + "0123456789abcdef" * 2),
        ("log c", f"stored {encrypted} for u1"),
        ("log c2", f"again: {encrypted}"),
        ("log d", "nothing to see: at-u1, a, r"),
        ("log e", ""),
    ]
    tokens = {ACCESS: PLAIN, REFRESH: PLAIN, "at-u1": PLAIN}
    leaks = find_leaks(texts, tokens)
    assert sorted(leaks, key=lambda leak: leak.where) == [
        Leak("log a", PLAIN, fingerprint(ACCESS)),
        Leak("log b", PLAIN, fingerprint(REFRESH)),  # form-encoded
        # Any Fernet ciphertext is a leak, whatever key made it.
        Leak("log c", ENCRYPTED, fingerprint(encrypted)),
        Leak("log c2", ENCRYPTED, fingerprint(encrypted)),
    ]
    # Short placeholders are not looked for; reports never hold a token.
    assert all(ACCESS not in str(leak) and REFRESH not in str(leak) for leak in leaks)
    assert find_leaks([("page token", "CAESBhABGAEgAQ" * 10)], tokens) == []


def test_a_token_in_an_error_column_is_found(
    request, token_watch: TokenWatch, database, cipher, connected_users
):
    user = connected_users[0]
    encrypted_access = cipher.encrypt(user["access_token"])
    with database.begin() as conn:
        conn.execute(
            SyncState.__table__.insert().values(
                user_id=user["id"], service="calendar", last_error=f"refresh failed: {user['refresh_token']}"
            )
        )
        conn.execute(
            WebhookInbox.__table__.insert().values(
                source="google_calendar", dedup_key="k1", error=f"bad grant {encrypted_access}"
            )
        )
    leaks = {(leak.where, leak.what) for leak in token_watch.leaks(request.node)}
    assert leaks == {
        ("database sync_state.last_error", PLAIN),
        ("database webhook_inbox.error", ENCRYPTED),
    }
    with database.begin() as conn:
        conn.execute(update(SyncState).values(last_error=None))
        conn.execute(update(WebhookInbox).values(error=None))
    assert token_watch.leaks(request.node) == []


def test_a_token_stored_by_another_process_is_known_from_the_database(
    request, token_watch: TokenWatch, database, cipher, connected_users
):
    """A run worker in another process refreshed a token: the check never saw it encrypted, but
    reads it from `google_connections` and decrypts it with the test's key."""
    user = connected_users[0]["id"]
    refreshed = "ya29.other-process-" + "Zz9" * 12
    stored = Fernet(cipher.key.encode()).encrypt(refreshed.encode()).decode()  # not TokenCrypto
    with database.begin() as conn:
        conn.execute(
            update(GoogleConnection)
            .where(GoogleConnection.user_id == user)
            .values(access_token=stored, last_error=f"refresh answered {refreshed}")
        )
    assert [str(leak) for leak in token_watch.leaks(request.node)] == [
        f"token {fingerprint(refreshed)} in database google_connections.last_error"
    ]
    with database.begin() as conn:
        conn.execute(update(GoogleConnection).values(last_error=None))


def test_a_token_in_a_log_record_is_found(request, token_watch: TokenWatch, sandbox):
    # A token the test's sandbox issued (known from the sandbox, never encrypted here).
    token = sandbox.world.list_users()[0]["refresh_token"]
    logging.getLogger("sunny_pipelines.example").info("refreshing with %s", token)
    # The emulated Google's own loggers are not the product's.
    logging.getLogger("sunny_pipelines.sandbox.example").warning("issued %s", token)
    assert [str(leak) for leak in token_watch.leaks(request.node)] == [
        f"token {fingerprint(token)} in log record sunny_pipelines.example (INFO)"
    ]
    token_watch.records.clear()


def test_a_token_in_a_dagster_run_is_found(request, token_watch: TokenWatch, cipher):
    encrypted = cipher.encrypt(ACCESS)

    @dg.op
    def leaky(context: dg.OpExecutionContext) -> None:
        context.log.info(f"calling Google with {ACCESS}")
        context.log_event(dg.AssetMaterialization("grants", metadata={"stored": encrypted}))

    @dg.job
    def leaky_job() -> None:
        leaky()

    with dg.instance_for_test() as instance:
        assert leaky_job.execute_in_process(instance=instance).success
    places = {(leak.where.split(" of run ")[0], leak.what) for leak in token_watch.leaks(request.node)}
    assert places == {
        ("Dagster event log message", PLAIN),
        ("Dagster event ASSET_MATERIALIZATION", ENCRYPTED),
    }
    token_watch.events.clear()


def test_a_token_in_a_process_log_is_found(request, token_watch: TokenWatch, tmp_path: Path, cipher):
    cipher.encrypt(REFRESH)
    log = tmp_path / "daemon.log"
    log.write_text(f"2026-11-29 daemon: refresh_token={REFRESH}\n")
    watch_log_file(log)
    assert [str(leak) for leak in token_watch.leaks(request.node)] == [
        f"token {fingerprint(REFRESH)} in log file daemon.log"
    ]
    log.write_text("clean\n")


def test_the_teardown_check_fails_a_leaking_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: a test that logs a token fails at teardown, naming the place, not the token."""
    # The inner pytest runs in a temporary directory: it finds the project through PYTHONPATH.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    )
    pytester.makeconftest('pytest_plugins = ["sunny_pipelines_tests.token_leaks"]')
    pytester.makepyfile(
        f"""
        import logging
        from sunny_pipelines.db.secrets import TokenCrypto

        def test_leaks():
            TokenCrypto("{Fernet.generate_key().decode()}").encrypt("{ACCESS}")
            logging.getLogger("sunny_pipelines.x").warning("token {ACCESS}")

        def test_clean():
            logging.getLogger("sunny_pipelines.x").warning("no token here")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--show-capture=no")
    result.assert_outcomes(passed=2, errors=1)
    expected = f"*token leak: token {fingerprint(ACCESS)} in log record sunny_pipelines.x (WARNING)*"
    result.stdout.fnmatch_lines([expected])
    assert ACCESS not in result.stdout.str()
