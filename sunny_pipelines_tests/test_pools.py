"""The old Celery queues as concurrency pools: every op and asset of the code location runs in
one of them, each pool has its own limit in `pools.POOL_LIMITS`, and `python -m
sunny_pipelines.pools apply` writes those limits into an instance. The instance files
(dagster.yaml, deploy/dagster.yaml) retry crashed runs only, monitor runs and prune ticks."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import pytest
import yaml

from sunny_pipelines.definitions import DOMAINS, build_defs
from sunny_pipelines.pools import POOL_LIMITS, apply_pool_limits, pool_limits
from sunny_pipelines_tests.stack import DEPLOY, PROJECT_ROOT, dagster_home

QUEUES = {"email", "ai", "drive", "calendar", "attendee", "sync", "auth"}


def test_the_seven_queues_are_the_pools_each_with_a_limit():
    assert set(POOL_LIMITS) == QUEUES
    assert all(isinstance(limit, int) and limit >= 1 for limit in POOL_LIMITS.values())


def test_every_op_asset_and_check_runs_in_one_of_the_pools(resources):
    defs = build_defs(resources)
    nodes = {
        (job.name, node.name): node.pool for job in defs.resolve_all_job_defs() for node in job.all_node_defs
    }
    assert ("__ASSET_JOB", "calendar_events") in nodes  # every asset and check is in the asset job
    outside = {node: pool for node, pool in nodes.items() if pool not in POOL_LIMITS}
    assert outside == {}
    assert {domain.pool for domain in DOMAINS} <= QUEUES


def test_each_domain_runs_in_its_own_pool():
    """A domain's assets, checks and ops all use the pool it registers (its old queue)."""
    for domain in DOMAINS:
        definitions = domain.definitions
        nodes = [*(definitions.assets or []), *(definitions.asset_checks or [])]
        pools = {node.op.name: node.op.pool for node in nodes if isinstance(node, dg.AssetsDefinition)}
        for job in definitions.jobs or []:
            if isinstance(job, dg.JobDefinition):
                pools |= {node.name: node.pool for node in job.all_node_defs}
        assert pools, domain.name
        assert set(pools.values()) == {domain.pool}, (domain.name, pools)


def test_apply_sets_each_pools_limit_on_the_instance():
    with dg.instance_for_test() as instance:
        assert pool_limits(instance, POOL_LIMITS) == {}
        assert apply_pool_limits(instance) == dict(POOL_LIMITS)
        for pool, limit in POOL_LIMITS.items():
            info = instance.event_log_storage.get_concurrency_info(pool)
            assert (info.slot_count, info.limit) == (limit, limit)
        # Applying again changes nothing.
        assert apply_pool_limits(instance) == dict(POOL_LIMITS)
        assert {p.name for p in instance.event_log_storage.get_pool_limits() if not p.from_default} == QUEUES


def test_the_apply_command_writes_the_limits_into_dagster_home(tmp_path):
    home = dagster_home(tmp_path / "dagster_home")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "sunny_pipelines.pools", "apply"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "calendar   4" in done.stdout
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert pool_limits(instance, POOL_LIMITS) == dict(POOL_LIMITS)
        # Pools outside the dict get dagster.yaml's default.
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 4


INSTANCE_FILES = [PROJECT_ROOT / "dagster.yaml", DEPLOY / "dagster.yaml"]


@pytest.mark.parametrize("path", INSTANCE_FILES, ids=["dev", "deploy"])
def test_instance_files_retry_crashes_only_monitor_runs_and_prune_ticks(path):
    config = yaml.safe_load(path.read_text())
    assert config["run_retries"] == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    for kind in ("schedule", "sensor"):
        assert set(config["retention"][kind]["purge_after_days"]) == {"skipped", "success", "failure"}


def test_the_dev_instance_file_loads_with_these_settings(tmp_path):
    with dg.DagsterInstance.from_config(str(dagster_home(tmp_path / "home"))) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_monitoring_enabled
        assert instance.get_settings("run_retries")["retry_on_asset_or_op_failure"] is False
