"""Google token refresh (the old `refresh_expired_tokens()`, every 30 minutes) and validation (the
old `validate_all_tokens()`, daily 05:00).

Refresh: every usable grant whose access token expires within `SUNNY_TOKEN_REFRESH_WITHIN_MINUTES`
(45) gets a new one, persisted encrypted, so no sync starts with a dying token. Google answering
`invalid_grant` means the user withdrew consent (or the grant expired): the connection waits for
re-consent (`needs_reauth`, the reason in `last_error`), the user's push channels are stopped and
every Google sync skips them with that reason until they reconnect. A transient failure (network,
5xx) is retried with backoff and changes no status; if it persists the run fails naming the users.

Validation: each active grant's access token at Google's tokeninfo endpoint must be issued to our
client and carry every required scope (`vocabulary.REQUIRED_SCOPES`). A token Google no longer
knows, or issued to another client, is refreshed and checked again; a grant missing a scope, or
whose refresh Google refuses, waits for re-consent.

Tokens never appear in logs, metadata or `last_error`: reasons are Google's error codes and texts.
"""

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import dagster as dg
import requests
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from sqlalchemy import Connection, or_, select, update

from sunny_pipelines.db.grants import usable_grant_clause
from sunny_pipelines.db.models import GoogleConnection, User, WatchChannel
from sunny_pipelines.resources.channels import stop_user_channels
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import REQUIRED_SCOPES, ChannelStatus, GrantStatus

REFRESH_WITHIN = timedelta(minutes=float(os.environ.get("SUNNY_TOKEN_REFRESH_WITHIN_MINUTES", "45")))
# Attempts at Google per token (each one is itself retried by google-auth on 5xx, three times
# within about 3 s), and the pause before the second attempt, doubled for each later one.
ATTEMPTS = int(os.environ.get("SUNNY_TOKEN_ATTEMPTS", "3"))
BACKOFF_SECONDS = float(os.environ.get("SUNNY_TOKEN_BACKOFF_SECONDS", "2"))
# Grants read per batch, and Google calls in flight at once (the old "auth" queue's workers).
BATCH_SIZE = 500
CONCURRENCY = int(os.environ.get("SUNNY_AUTH_CONCURRENCY", "8"))
# Users named in a failed run's message; all of them are in its metadata.
USERS_NAMED = 5


class Outcome(StrEnum):
    """What happened to one user's grant."""

    REFRESHED = "refreshed"
    VALID = "valid"
    NEEDS_REAUTH = "needs_reauth"  # Google refused the grant: the user must consent again
    TRANSIENT = "transient"  # network or 5xx after every attempt: nothing changed, tried again next run
    FAILED = "failed"  # refused for a reason that is not the user's (e.g. our client's credentials)
    SKIPPED = "skipped"  # the grant changed under us (reconnected, disconnected): nothing to do


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str = ""


class TransientGoogleError(Exception):
    """Google did not answer usefully (network error, 5xx) after every attempt."""


# -- plain decisions ----------------------------------------------------------------------------


def oauth_error_code(exc: RefreshError) -> str:
    """The OAuth `error` of a refused token request ("invalid_grant", ...), "" if none."""
    if len(exc.args) > 1 and isinstance(exc.args[1], Mapping):
        return str(exc.args[1].get("error") or "")
    return str(exc.args[0]).split(":", 1)[0].strip() if exc.args else ""


def refresh_failure(exc: Exception) -> Result:
    """How a failed refresh is treated: `invalid_grant` is the user's grant gone; a retryable
    answer or a network error is transient; anything else (invalid_client, unauthorized_client,
    a malformed answer) is ours to fix and leaves the user's status alone."""
    if isinstance(exc, RefreshError):
        reason = str(exc.args[0]) if exc.args else type(exc).__name__
        if oauth_error_code(exc) == "invalid_grant":
            return Result(Outcome.NEEDS_REAUTH, reason)
        if getattr(exc, "retryable", False):
            return Result(Outcome.TRANSIENT, reason)
        return Result(Outcome.FAILED, reason)
    if isinstance(exc, (TransportError, requests.RequestException, TransientGoogleError)):
        return Result(Outcome.TRANSIENT, f"{type(exc).__name__}: {str(exc)[:300]}")
    return Result(Outcome.FAILED, f"{type(exc).__name__}: {str(exc)[:300]}")


class Action(StrEnum):
    VALID = "valid"
    REFRESH = "refresh"
    REAUTH = "reauth"


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str = ""


def token_verdict(
    info: Mapping[str, Any] | None, client_id: str, required_scopes: Iterable[str], *, refreshed: bool
) -> Verdict:
    """What a tokeninfo answer says of a grant. ``info`` None: Google does not know the token
    (expired, revoked). A token unknown or issued to another client is refreshed with our client
    and checked again (``refreshed``); if it still fails, the user must consent again. A missing
    scope cannot be fixed by a refresh: the user must consent again."""
    if info is None:
        if refreshed:
            return Verdict(Action.REAUTH, "tokeninfo refuses a freshly refreshed token")
        return Verdict(Action.REFRESH, "access token unknown to Google (expired or revoked)")
    audience = str(info.get("aud") or info.get("audience") or info.get("issued_to") or "")
    if audience != client_id:
        reason = f"token issued to client {audience or '(none)'}, not ours"
        return Verdict(Action.REAUTH if refreshed else Action.REFRESH, reason)
    granted = set(str(info.get("scope") or "").split())
    missing = [scope for scope in required_scopes if scope not in granted]
    if missing:
        return Verdict(Action.REAUTH, "missing scope " + ", ".join(missing))
    return Verdict(Action.VALID)


def backoff_delays(attempts: int, base_seconds: float) -> list[float]:
    """The pauses between ``attempts`` tries: base, 2×base, 4×base …"""
    return [base_seconds * 2**i for i in range(max(attempts - 1, 0))]


# -- Google --------------------------------------------------------------------------------------


def with_retries(call: Callable[[], Any], attempts: int, backoff_seconds: float, sleep=time.sleep) -> Any:
    """``call()``, tried again after a transient failure (see `refresh_failure`)."""
    delays = backoff_delays(attempts, backoff_seconds)
    for delay in [*delays, None]:
        try:
            return call()
        except Exception as exc:
            if delay is None or refresh_failure(exc).outcome != Outcome.TRANSIENT:
                raise
            sleep(delay)
    raise AssertionError("unreachable")


def refresh_with_google(google: GoogleResource, refresh_token: str) -> Credentials:
    """A new access token from Google's token endpoint (raises RefreshError / TransportError)."""
    credentials = Credentials(
        token=None,
        refresh_token=refresh_token,
        token_uri=google.token_uri,
        client_id=google.client_id,
        client_secret=google.client_secret,
    )
    credentials.refresh(google.oauth_request())
    return credentials


def token_info(google: GoogleResource, access_token: str) -> dict[str, Any] | None:
    """Google's tokeninfo answer for ``access_token``; None when Google does not know it. The token
    is POSTed, so it stays out of URLs and access logs."""
    response = requests.post(
        google.tokeninfo_uri, data={"access_token": access_token}, timeout=google.timeout_seconds
    )
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientGoogleError(f"tokeninfo answered {response.status_code}")
    if response.status_code != 200:
        return None
    return response.json()


# -- the grants ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    user_id: str
    access_token: str | None
    refresh_token: str | None
    expires_at: datetime | None


def usable_grant(conn: Connection, google: GoogleResource, user_id: str) -> Grant | None:
    row = conn.execute(
        select(GoogleConnection.access_token, GoogleConnection.refresh_token, GoogleConnection.expires_at)
        .join(User, User.id == GoogleConnection.user_id)
        .where(GoogleConnection.user_id == user_id, usable_grant_clause())
    ).first()
    if row is None:
        return None
    cipher = google.cipher
    return Grant(user_id, cipher.decrypt(row.access_token), cipher.decrypt(row.refresh_token), row.expires_at)


def persist_refreshed(
    database: DatabaseResource, google: GoogleResource, user_id: str, creds: Credentials
) -> bool:
    """Store a refreshed token, encrypted, on a grant that is still active; whether it was."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "access_token": google.cipher.encrypt(creds.token),
        "expires_at": creds.expiry.replace(tzinfo=UTC) if creds.expiry else None,
        "last_refreshed_at": now,
        "last_error": None,
        "updated_at": now,
    }
    if creds.refresh_token:  # Google may rotate it
        values["refresh_token"] = google.cipher.encrypt(creds.refresh_token)
    with database.begin() as conn:
        return bool(
            conn.execute(
                update(GoogleConnection)
                .where(GoogleConnection.user_id == user_id, GoogleConnection.status == GrantStatus.ACTIVE)
                .values(**values)
            ).rowcount
        )


def grant_refused(
    log: Any, google: GoogleResource, database: DatabaseResource, user_id: str, reason: str
) -> Result:
    """The user's grant is gone: wait for re-consent, and stop their push channels."""
    google.mark_needs_reauth(user_id, reason)
    stopped = stop_user_channels(log, google, database, user_id)
    log.warning(f"user {user_id} needs to reconnect Google ({reason}); {stopped} channels stopped")
    return Result(Outcome.NEEDS_REAUTH, reason)


def refresh_user(
    log: Any,
    google: GoogleResource,
    database: DatabaseResource,
    user_id: str,
    *,
    attempts: int = ATTEMPTS,
    backoff_seconds: float = BACKOFF_SECONDS,
) -> Result:
    """Refresh one user's access token and persist it; see the module docstring."""
    with database.begin() as conn:
        grant = usable_grant(conn, google, user_id)
    if grant is None or not grant.refresh_token:
        return Result(Outcome.SKIPPED, "no usable grant")
    try:
        creds = with_retries(
            lambda: refresh_with_google(google, grant.refresh_token), attempts, backoff_seconds
        )
    except Exception as exc:
        failure = refresh_failure(exc)
        if failure.outcome == Outcome.NEEDS_REAUTH:
            return grant_refused(log, google, database, user_id, f"token refresh refused: {failure.reason}")
        return failure
    if not persist_refreshed(database, google, user_id, creds):
        return Result(Outcome.SKIPPED, "the grant changed during the refresh")
    return Result(Outcome.REFRESHED)


def validate_user(
    log: Any,
    google: GoogleResource,
    database: DatabaseResource,
    user_id: str,
    *,
    attempts: int = ATTEMPTS,
    backoff_seconds: float = BACKOFF_SECONDS,
) -> Result:
    """Check one active grant at tokeninfo; see the module docstring."""
    with database.begin() as conn:
        grant = usable_grant(conn, google, user_id)
    if grant is None:
        return Result(Outcome.SKIPPED, "no usable grant")

    def lookup(token: str) -> dict[str, Any] | None:
        return with_retries(lambda: token_info(google, token), attempts, backoff_seconds)

    now = datetime.now(UTC)
    live = grant.access_token and (grant.expires_at is None or grant.expires_at > now)
    try:
        info = lookup(grant.access_token) if live else None
        verdict = token_verdict(info, google.client_id, REQUIRED_SCOPES, refreshed=False)
        refreshed = False
        if verdict.action == Action.REFRESH:
            if not grant.refresh_token:
                verdict = Verdict(Action.REAUTH, "no refresh token")
            else:
                creds = with_retries(
                    lambda: refresh_with_google(google, grant.refresh_token), attempts, backoff_seconds
                )
                persist_refreshed(database, google, user_id, creds)
                refreshed = True
                info = lookup(creds.token)
                verdict = token_verdict(info, google.client_id, REQUIRED_SCOPES, refreshed=True)
    except Exception as exc:
        failure = refresh_failure(exc)
        if failure.outcome == Outcome.NEEDS_REAUTH:
            result = grant_refused(
                log, google, database, user_id, f"token validation: refresh refused: {failure.reason}"
            )
            record_validated(database, user_id, None)
            return result
        return failure
    scopes = sorted(str(info.get("scope") or "").split()) if info else None
    if verdict.action == Action.REAUTH:
        result = grant_refused(log, google, database, user_id, f"token validation: {verdict.reason}")
        record_validated(database, user_id, scopes)
        return result
    record_validated(database, user_id, scopes)
    return Result(Outcome.REFRESHED if refreshed else Outcome.VALID)


def record_validated(database: DatabaseResource, user_id: str, scopes: list[str] | None) -> None:
    values: dict[str, Any] = {"last_validated_at": datetime.now(UTC)}
    if scopes is not None:
        values["scopes"] = scopes  # what Google says is granted now
    with database.begin() as conn:
        conn.execute(update(GoogleConnection).where(GoogleConnection.user_id == user_id).values(**values))


# -- batches ------------------------------------------------------------------------------------------


def users_in_batches(
    database: DatabaseResource, where: Callable[[], Any], batch_size: int = BATCH_SIZE
) -> Iterator[list[str]]:
    """Users of usable grants matching ``where()``, ``batch_size`` at a time (keyset pages)."""
    after = ""
    while True:
        with database.begin() as conn:
            batch = list(
                conn.execute(
                    select(GoogleConnection.user_id)
                    .join(User, User.id == GoogleConnection.user_id)
                    .where(usable_grant_clause(), where(), GoogleConnection.user_id > after)
                    .order_by(GoogleConnection.user_id)
                    .limit(batch_size)
                ).scalars()
            )
        if not batch:
            return
        yield batch
        after = batch[-1]


def run_batches(
    log: Any,
    batches: Iterable[list[str]],
    work: Callable[[str], Result],
    concurrency: int = CONCURRENCY,
) -> dict[str, Result]:
    """``work`` for every user, ``concurrency`` at a time; one user's error never stops the others."""

    def guarded(user_id: str) -> Result:
        try:
            return work(user_id)
        except Exception as exc:  # a bug or our database: reported, the others go on
            log.warning(f"user {user_id}: {type(exc).__name__}: {str(exc)[:300]}")
            return Result(Outcome.FAILED, f"{type(exc).__name__}: {str(exc)[:300]}")

    results: dict[str, Result] = {}
    with ThreadPoolExecutor(max_workers=max(concurrency, 1)) as pool:
        for batch in batches:
            results.update(zip(batch, pool.map(guarded, batch), strict=True))
    return results


def summarize(results: Mapping[str, Result]) -> dict[str, Any]:
    """Run metadata: a count per outcome, and the users that need attention by reason."""
    counts = {outcome.value: 0 for outcome in Outcome}
    for result in results.values():
        counts[result.outcome.value] += 1
    attention = {
        user: f"{result.outcome.value}: {result.reason}"[:500]
        for user, result in sorted(results.items())
        if result.outcome in (Outcome.NEEDS_REAUTH, Outcome.TRANSIENT, Outcome.FAILED)
    }
    return {**counts, "users": dg.MetadataValue.json(attention)}


def report(
    context: dg.OpExecutionContext, what: str, results: Mapping[str, Result]
) -> Iterator[dg.Output[int]]:
    """Log and output the counts; fail the run naming the users Google could not be asked about
    (transient) or refused for a reason that is ours to fix."""
    metadata = summarize(results)
    counts = {key: value for key, value in metadata.items() if key != "users"}
    context.log.info(f"{what}: " + ", ".join(f"{key} {value}" for key, value in counts.items()))
    unfinished = {
        user: result
        for user, result in results.items()
        if result.outcome in (Outcome.TRANSIENT, Outcome.FAILED)
    }
    if unfinished:
        named = sorted(unfinished.items())[:USERS_NAMED]
        more = len(unfinished) - len(named)
        raise dg.Failure(
            description=f"{what}: {len(unfinished)} users not done (their status is unchanged): "
            + "; ".join(f"{user}: {result.outcome.value}: {result.reason[:200]}" for user, result in named)
            + (f"; and {more} more (see the users metadata)" if more else ""),
            metadata=metadata,
            allow_retries=False,
        )
    yield dg.Output(len(results), metadata=metadata)


def stop_channels_of_refused_grants(log: Any, google: GoogleResource, database: DatabaseResource) -> int:
    """Channels still open for users waiting for re-consent (a sync, not this job, may have met
    the refusal): stopped too."""
    with database.begin() as conn:
        user_ids = list(
            conn.execute(
                select(WatchChannel.user_id)
                .join(GoogleConnection, GoogleConnection.user_id == WatchChannel.user_id)
                .where(
                    WatchChannel.status == ChannelStatus.ACTIVE,
                    GoogleConnection.status == GrantStatus.NEEDS_REAUTH,
                )
                .distinct()
            ).scalars()
        )
    return sum(stop_user_channels(log, google, database, user_id) for user_id in user_ids)


# -- Dagster --------------------------------------------------------------------------------------------


@dg.op(pool="auth", description="Refresh the access tokens of usable grants that expire soon.")
def refresh_expiring_tokens(
    context: dg.OpExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.Output[int]]:
    horizon = datetime.now(UTC) + REFRESH_WITHIN

    def expiring() -> Any:
        return or_(GoogleConnection.expires_at.is_(None), GoogleConnection.expires_at <= horizon)

    results = run_batches(
        context.log,
        users_in_batches(database, expiring),
        lambda user_id: refresh_user(
            context.log, google, database, user_id, attempts=ATTEMPTS, backoff_seconds=BACKOFF_SECONDS
        ),
    )
    stopped = stop_channels_of_refused_grants(context.log, google, database)
    if stopped:
        context.log.info(f"stopped {stopped} channels of users waiting for re-consent")
    yield from report(context, "token refresh", results)


@dg.op(pool="auth", description="Check every active grant at Google's tokeninfo endpoint.")
def validate_tokens(
    context: dg.OpExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.Output[int]]:
    results = run_batches(
        context.log,
        users_in_batches(database, lambda: GoogleConnection.user_id.is_not(None)),
        lambda user_id: validate_user(
            context.log, google, database, user_id, attempts=ATTEMPTS, backoff_seconds=BACKOFF_SECONDS
        ),
    )
    yield from report(context, "token validation", results)


@dg.job(
    executor_def=dg.in_process_executor,
    description="Refresh the Google access tokens that expire within the next 45 minutes.",
)
def token_refresh_job() -> None:
    refresh_expiring_tokens()


@dg.job(
    executor_def=dg.in_process_executor,
    description="Validate every active Google grant (audience, required scopes) at tokeninfo.",
)
def token_validation_job() -> None:
    validate_tokens()


token_refresh_schedule = dg.ScheduleDefinition(
    name="token_refresh_schedule",
    cron_schedule="*/30 * * * *",
    job=token_refresh_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Google token refresh: access tokens expiring within 45 minutes, in batches.",
)

token_validation_schedule = dg.ScheduleDefinition(
    name="token_validation_schedule",
    cron_schedule="0 5 * * *",
    job=token_validation_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Google token validation: audience and scopes of every active grant; grants Google "
    "refuses wait for re-consent.",
)
