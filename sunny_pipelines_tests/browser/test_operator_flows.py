"""The operator's flows in the Dagster UI, driven in a real browser (Playwright on Debian's
Chromium) against the quick-start stack: the sandbox, the webhook receiver and `dagster dev`
(webserver and daemon) on the test database, with a few connected users whose first syncs the
users sensor launched. One stack and one browser serve every flow of the module.

Each flow is a helper function (``read_partition_metadata``, ``launch_materialization``,
``launch_from_launchpad``, ...) that a test strings together; the screenshots of each step land in
``ARTIFACTS`` (kept after the run: ``.sunny/test-artifacts/browser/`` or
``$SUNNY_TEST_ARTIFACTS/browser/``)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import func, select, text

from sunny_pipelines.db.engine import PROJECT_ROOT
from sunny_pipelines.db.grants import store_google_grants
from sunny_pipelines.db.models import Base, CalendarEvent, WebhookInbox
from sunny_pipelines.definitions import DOMAINS
from sunny_pipelines.inbox.rows import MAX_ATTEMPTS
from sunny_pipelines.partitions import TRIGGER_TAG
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import Source, Trigger
from sunny_pipelines_tests import token_leaks
from sunny_pipelines_tests.google_clients import GMAIL_TOPIC
from sunny_pipelines_tests.stack import DevStack, dev_stack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = os.environ.get("SUNNY_CHROMIUM", "/usr/bin/chromium")
# Kept after the run (not a pytest tmp dir): screenshots of every step and the `dagster dev` log.
ARTIFACTS = Path(os.environ.get("SUNNY_TEST_ARTIFACTS") or PROJECT_ROOT / ".sunny/test-artifacts") / "browser"
USERS = 3
# Generous: runs start a process per run and per step on a loaded 2-core machine.
RUN_TIMEOUT_MS = 150_000
STEP_TIMEOUT_MS = 30_000


# --- the stack ---------------------------------------------------------------------------------


@dataclass
class Operator:
    """What the flows work against: the running stack and the world behind it."""

    stack: DevStack
    database: DatabaseResource
    sandbox: object
    users: list[dict] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.stack.webserver

    def user(self, index: int) -> dict:
        return self.users[index]


@pytest.fixture(scope="module")
def ui_sandbox():
    """The module's sandbox world (its users are the stack's)."""
    from sunny_pipelines.sandbox.server import SandboxServer

    server = SandboxServer(host="127.0.0.1", port=0, users=USERS, events_per_user=12, seed=7).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def operator(database_url, cipher, ui_sandbox, tmp_path_factory) -> Iterator[Operator]:
    """The quick-start stack with the sandbox's users connected and their first syncs done."""
    from sunny_pipelines.sandbox.core.signing import PUBSUB_SERVICE_ACCOUNT
    from sunny_pipelines.webhooks import WebhookSettings, create_app, serve_in_thread

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    database = DatabaseResource(url=database_url)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with database.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    grants = ui_sandbox.world.list_users()
    with database.begin() as conn:
        store_google_grants(conn, cipher, grants)

    audience = "https://hooks.sunny.test/webhooks/google/gmail"
    settings = WebhookSettings.from_env(
        {
            "SUNNY_DATABASE_URL": database.url,
            "SUNNY_SANDBOX_URL": ui_sandbox.base_url,
            "SUNNY_PUBSUB_AUDIENCE": audience,
            "SUNNY_PUBSUB_SERVICE_ACCOUNT": PUBSUB_SERVICE_ACCOUNT,
            "SUNNY_ATTENDEE_WEBHOOK_SECRET": ui_sandbox.world.attendee_webhook_secret,
        }
    )
    receiver, stop_receiver = serve_in_thread(create_app(settings), "127.0.0.1", port=0)
    ui_sandbox.world.create_push_subscription(GMAIL_TOPIC, receiver + "/webhooks/google/gmail", audience)
    ui_sandbox.world.attendee_subscribe(receiver + "/webhooks/attendee")
    home = tmp_path_factory.mktemp("browser") / "dagster_home"
    try:
        # The log is kept with the screenshots: it is what explains a red flow in CI.
        with dev_stack(home, ARTIFACTS / "dagster_dev.log", database, cipher, ui_sandbox, receiver) as stack:
            operator = Operator(stack, database, ui_sandbox, grants)
            stack.wait(lambda: first_syncs_done(stack, len(grants)), "the users' first syncs", timeout=240)
            yield operator
    finally:
        stop_receiver()


def first_syncs_done(stack: DevStack, user_count: int) -> bool:
    """Every domain's first-sync run was launched by the users sensor and succeeded."""
    jobs = {domain.first_sync_job.name for domain in DOMAINS if domain.first_sync_job}
    with dg.DagsterInstance.from_config(str(stack.home)) as instance:
        if len(instance.get_dynamic_partitions("users")) < user_count:
            return False
        runs = instance.get_runs(filters=dg.RunsFilter(tags={TRIGGER_TAG: Trigger.FIRST_SYNC.value}))
    failed = [run for run in runs if run.status == dg.DagsterRunStatus.FAILURE]
    assert not failed, f"first syncs failed: {[run.job_name for run in failed]}"
    done = {run.job_name for run in runs if run.status == dg.DagsterRunStatus.SUCCESS}
    return jobs <= done


@pytest.fixture(autouse=True)
def stack_watched_for_token_leaks(no_token_leaks, operator: Operator) -> None:
    """The module's stack outlives a test: register its Dagster home and log with each test's
    token-leak check (which forgets them when the test before it ended)."""
    token_leaks.watch_dagster_home(operator.stack.home)
    token_leaks.watch_log_file(operator.stack.log)


# --- the browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium with apt")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@dataclass
class UI:
    """One test's browser tab on the Dagster UI at ``url``, and its numbered screenshots in
    ``ARTIFACTS`` (``<test>-<n>-<step>.png``)."""

    page: Page
    url: str
    prefix: str
    shots: int = 0

    def shot(self, step: str) -> Path:
        self.shots += 1
        path = ARTIFACTS / f"{self.prefix}-{self.shots:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def ui(browser, operator: Operator, request) -> Iterator[UI]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    # The first visit to a Dagster instance offers to join its community; whenever that dialog
    # covers the page, skip it (the answer is kept by the instance, so it shows once).
    page.add_locator_handler(
        page.get_by_role("dialog").filter(has_text="Join the Dagster community"),
        lambda dialog: dialog.get_by_role("button", name="Skip").click(),
    )
    ui = UI(page, operator.url, request.node.name.removeprefix("test_"))
    yield ui
    ui.shot("end")  # where the flow stood when it ended (or failed)
    context.close()


# --- the flows (one helper each) ---------------------------------------------------------------


def open_partition(ui: UI, asset: str, partition: str) -> None:
    """Catalog → the asset → Partitions, the partition found by filtering the list by name."""
    page = ui.page
    page.goto(f"{ui.url}/assets/{asset}?view=partitions")
    page.get_by_role("textbox", name="Filter by name…").fill(partition)
    page.get_by_text(partition, exact=True).first.click()
    expect(page.get_by_text("Latest materialization")).to_be_visible()


def read_partition_metadata(ui: UI, asset: str, partition: str) -> dict[str, str]:
    """The metadata table of the partition's latest materialization, as the page shows it."""
    open_partition(ui, asset, partition)
    page = ui.page
    table = page.get_by_role("table").filter(has=page.get_by_role("cell", name="trigger", exact=True))
    expect(table).to_be_visible()
    metadata = {}
    for row in table.get_by_role("row").all():
        cells = [cell.strip() for cell in row.get_by_role("cell").all_inner_texts()]
        if len(cells) >= 2:
            metadata[cells[0]] = cells[1]
    return metadata


@dataclass(frozen=True)
class Launched:
    kind: str  # "run" or "backfill"
    id: str


def launch_materialization(ui: UI, asset: str, partitions: Sequence[str] | None) -> Launched:
    """From the asset's partitions page: Materialize… → the partitions (``None``: All) → Launch.
    One partition is one run; more are a backfill. Returns what the launch toast links to."""
    page = ui.page
    page.goto(f"{ui.url}/assets/{asset}?view=partitions")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog").filter(has_text=f"Launch runs to materialize {asset}")
    if partitions is None:
        dialog.get_by_role("button", name="All", exact=True).click()
    else:
        dialog.get_by_text("Select a partition or create one").click()
        for partition in partitions:
            page.get_by_role("textbox", name="Filter partitions").fill(partition)
            page.get_by_role("menuitem", name=partition).click()
        dialog.get_by_text("Partition selection").click()  # closes the partition menu
        count = len(partitions)
        expect(dialog.get_by_text(f"{count} partition{'s' if count != 1 else ''}")).to_be_visible()
    ui.shot("launch-dialog")
    dialog.get_by_role("button", name=re.compile(r"^Launch (backfill|\d+ runs?)$")).click()
    toast = page.get_by_role("listitem").filter(has_text=re.compile(r"Launched run|Created backfill"))
    expect(toast).to_be_visible()
    ui.shot("launched")
    href = toast.get_by_role("link", name="View").get_attribute("href") or ""
    match = re.search(r"/runs/(b/)?([\w-]+)", href)
    assert match, href
    return Launched("backfill" if match.group(1) else "run", match.group(2))


def expect_run_status(ui: UI, run_id: str, status: str) -> None:
    """The run's page shows ``status`` (Success, Failure) once the run has finished."""
    page = ui.page
    page.goto(f"{ui.url}/runs/{run_id}")
    expect(page.get_by_text(run_id[:8]).first).to_be_visible()
    expect(page.get_by_text(status, exact=True).first).to_be_visible(timeout=RUN_TIMEOUT_MS)


def read_failure(ui: UI, asset: str, partition: str) -> str:
    """A failed partition: its page says its last run failed, its logs say why."""
    page = ui.page
    open_partition(ui, asset, partition)
    expect(page.get_by_text("failed, and did not materialize this asset.")).to_be_visible()
    ui.shot("failed-partition")
    page.get_by_role("button", name="View logs").click()
    logs = page.get_by_role("dialog").filter(has=page.get_by_role("textbox", name="Filter…"))
    # The step's failure event carries the run's Failure: which users failed, and why.
    logs.get_by_role("textbox", name="Filter…").fill("type:STEP_FAILURE")
    logs.get_by_role("textbox", name="Filter…").press("Enter")
    reason = logs.get_by_text(re.compile(r"\d+ of \d+ users failed:")).first
    expect(reason).to_be_visible()
    ui.shot("failure-reason")
    return reason.inner_text()


def launch_from_launchpad(ui: UI, job: str, config_yaml: str) -> str:
    """Jobs → ``job`` → Launchpad, the run config typed into the editor, Launch Run; returns the
    id of the run whose page it opens."""
    page = ui.page
    page.goto(f"{ui.url}/jobs")
    page.get_by_role("link", name=re.compile(rf"\b{re.escape(job)}\b")).click()
    page.get_by_role("tab", name="Launchpad").click()
    editor = page.locator(".CodeMirror").first
    expect(editor).to_be_visible()
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(config_yaml)
    expect(page.get_by_text("No errors")).to_be_visible()
    ui.shot("launchpad")
    page.get_by_role("button", name="Launch Run").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    return re.search(r"/runs/([0-9a-f-]{36})", page.url).group(1)


# --- the tests -----------------------------------------------------------------------------------


def events_stored(database: DatabaseResource, user_id: str) -> int:
    with database.begin() as conn:
        query = select(func.count()).select_from(CalendarEvent).where(CalendarEvent.user_id == user_id)
        return conn.execute(query).scalar_one()


def test_find_a_users_partition_and_read_its_sync_metadata(operator, ui):
    user = operator.user(0)["id"]
    metadata = read_partition_metadata(ui, "calendar_events", user)
    ui.shot("partition-metadata")
    assert metadata["trigger"] == Trigger.FIRST_SYNC.value
    assert int(metadata["events_upserted"]) == events_stored(operator.database, user) > 0
    assert int(metadata["api_calls"]) > 0


def test_backfill_one_user_from_the_partitions_page(operator, ui):
    user = operator.user(1)["id"]
    launched = launch_materialization(ui, "calendar_events", [user])
    assert launched.kind == "run"
    expect_run_status(ui, launched.id, "Success")
    ui.shot("run-success")
    with dg.DagsterInstance.from_config(str(operator.stack.home)) as instance:
        assert instance.get_run_by_id(launched.id).tags["dagster/partition"] == user
    # A UI launch carries no trigger tag: the protocol counts it as a backfill of that user.
    assert read_partition_metadata(ui, "calendar_events", user)["trigger"] == Trigger.BACKFILL.value
    ui.shot("partition-after-backfill")


def test_a_failed_user_shows_failed_with_the_reason(operator, ui):
    failing = operator.user(2)
    # Google answers this user's requests with 403 (not retried); every other user's normally.
    operator.sandbox.world.inject_fault("server_error", user_email=failing["email"], count=10_000, status=403)
    try:
        # One partition is one run (more would be a backfill, which waits for the backfill daemon).
        launched = launch_materialization(ui, "calendar_events", [failing["id"]])
        expect_run_status(ui, launched.id, "Failure")
        ui.shot("run-failed")
    finally:
        operator.sandbox.world.clear_faults()
    ui.page.goto(f"{ui.url}/assets/calendar_events?view=partitions")
    expect(ui.page.get_by_text("Failed (1)")).to_be_visible()
    reason = read_failure(ui, "calendar_events", failing["id"])
    named = rf"1 of 1 users failed: {failing['id']}: HttpError: <HttpError 403"
    assert re.search(named, reason), reason


def test_replay_inbox_from_the_launchpad(operator, ui):
    user = operator.user(2)["id"]
    with operator.database.begin() as conn:
        dead_letter = conn.execute(
            WebhookInbox.__table__.insert()
            .values(
                source=Source.GOOGLE_CALENDAR,
                user_id=user,
                channel_id=f"browser-{user}",
                dedup_key=f"browser:{user}:dead-letter",
                payload={"resource_state": "exists", "message_number": 1, "service": "calendar_events"},
                status="failed",
                attempts=MAX_ATTEMPTS,
                error="HttpError 403 (every attempt)",
                received_at=datetime.now(UTC),
            )
            .returning(WebhookInbox.id)
        ).scalar_one()
    config = f"ops:\n  replay_failed_inbox_rows:\n    config:\n      user_id: {user}\n"
    run_id = launch_from_launchpad(ui, "replay_inbox", config)
    expect(ui.page.get_by_text("Success", exact=True).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(ui.page.get_by_text("1 failed rows back to pending").first).to_be_visible()
    ui.shot("replay-success")
    with dg.DagsterInstance.from_config(str(operator.stack.home)) as instance:
        assert instance.get_run_by_id(run_id).job_name == "replay_inbox"

    # The inbox sensor then requests the user's sync, which answers the row.
    def answered() -> bool:
        with operator.database.begin() as conn:
            row = conn.execute(select(WebhookInbox).where(WebhookInbox.id == dead_letter)).one()
        return row.status == "done"

    operator.stack.wait(answered, "the replayed row's sync", timeout=RUN_TIMEOUT_MS / 1000)


def launch_job(operator: Operator, job: str) -> str:
    """A run of ``job`` submitted through the webserver's GraphQL API (as a schedule would)."""
    from dagster_graphql import DagsterGraphQLClient

    port = int(operator.stack.webserver.rsplit(":", 1)[1])
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution(job)

    def finished() -> bool:
        return client.get_run_status(run_id) in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)

    operator.stack.wait(finished, f"the {job} run", timeout=RUN_TIMEOUT_MS / 1000)
    assert client.get_run_status(run_id) == dg.DagsterRunStatus.SUCCESS
    return run_id


def read_fleet_health(ui: UI) -> None:
    """Assets → fleet_health: the latest materialization's numbers (Overview), and every
    materialization with its metadata (Events)."""
    page = ui.page
    page.goto(f"{ui.url}/assets/fleet_health")
    expect(page.get_by_text("users_active").first).to_be_visible()
    expect(page.get_by_text("calendar_lag_p95_seconds").first).to_be_visible()
    ui.shot("fleet-health")
    page.goto(f"{ui.url}/assets/fleet_health?view=events")
    expect(page.get_by_text("inbox_pending").first).to_be_visible()
    ui.shot("fleet-health-events")


def read_failing_check(ui: UI, asset: str, check: str, *texts: str) -> None:
    """The asset's Checks tab: ``check`` failed; its latest execution shows ``texts`` (what it
    found, what to do)."""
    page = ui.page
    page.goto(f"{ui.url}/assets/{asset}?view=checks")
    page.get_by_text(check, exact=True).first.click()
    expect(page.get_by_text("Latest execution")).to_be_visible()
    expect(page.get_by_text("Failed", exact=True).first).to_be_visible()
    for shown in texts:
        expect(page.get_by_text(shown).first).to_be_visible()
    ui.shot("failing-check")


def test_fleet_health_and_a_failing_check(operator, ui):
    stale = operator.user(1)["id"]
    with operator.database.begin() as conn:  # a user whose calendar has not synced for 3 hours
        conn.execute(
            text(
                "UPDATE sync_state SET last_synced_at = now() - interval '3 hours' "
                "WHERE user_id = :user AND service = 'calendar'"
            ),
            {"user": stale},
        )
    launch_job(operator, "fleet_health_job")
    launch_job(operator, "health_checks")
    read_fleet_health(ui)
    read_failing_check(
        ui,
        "calendar_events",
        "sync_freshness",
        "1 of 3 users with a usable grant",
        "What to do",
        "stale_users",
    )
