"""deploy/helm/values.yaml: written for the chart version matching our Dagster, every key path
one that version has (deploy/helm/chart-keys-<version>.yaml), and the instance it configures the
same as deploy/dagster.yaml, the instance the end-to-end tests run on."""

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from sunny_pipelines.partitions import users_per_run
from sunny_pipelines_tests.deploy.deploy_files import DEPLOY, HELM, ROOT, helm_values


def _dagster_version() -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in dependencies if d.startswith("dagster==")]
    return pin.split("==")[1]


def _chart_version() -> str:
    found = re.search(r"chart version (\d+\.\d+\.\d+)", (HELM / "values.yaml").read_text())
    assert found, "values.yaml must name the chart version it was written for"
    return found.group(1)


def unknown_keys(values: Any, reference: Any, path: str = "") -> list[str]:
    """Key paths of ``values`` that ``reference`` (chart-keys notation) does not have."""
    if reference == "any":
        return []
    if isinstance(values, Mapping):
        if not isinstance(reference, Mapping):
            return [path]
        found = []
        for key, value in values.items():
            where = f"{path}.{key}" if path else key
            if key not in reference:
                found.append(where)
            else:
                found += unknown_keys(value, reference[key], where)
        return found
    if isinstance(values, list) and isinstance(reference, list):
        return [m for i, item in enumerate(values) for m in unknown_keys(item, reference[0], f"{path}[{i}]")]
    return []


def test_written_for_the_chart_version_of_our_dagster():
    # The chart is versioned with Dagster; the reference keys are that version's.
    assert _chart_version() == _dagster_version()
    assert (HELM / f"chart-keys-{_chart_version()}.yaml").exists()


def test_every_key_path_exists_in_that_chart_version():
    reference = yaml.safe_load((HELM / f"chart-keys-{_chart_version()}.yaml").read_text())
    assert unknown_keys(helm_values(), reference) == []


def test_a_typo_is_caught():
    reference = yaml.safe_load((HELM / f"chart-keys-{_chart_version()}.yaml").read_text())
    values = helm_values()
    values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["dequeueIntervalSecond"] = 1
    values["dagster-user-deployments"]["deployments"][0]["dagsterApiGrpcArg"] = []
    assert unknown_keys(values, reference) == [
        "dagster-user-deployments.deployments[0].dagsterApiGrpcArg",
        "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.dequeueIntervalSecond",
    ]


@pytest.fixture
def local_instance(monkeypatch) -> dict[str, Any]:
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://u@h:5432/d")
    config, _ = dagster_instance_config(str(DEPLOY))
    return config


def _chart_instance(values: Mapping[str, Any], tmp_path: Path) -> dict[str, Any]:
    """What the chart puts in dagster.yaml for the settings we give it (its templates
    configmap-instance.yaml and _concurrency.tpl), validated by Dagster's own instance schema."""
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    rendered = {
        "storage": {"postgres": {"postgres_url": "postgresql+psycopg2://u@h:5432/d"}},
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "dequeue_interval_seconds": queued["dequeueIntervalSeconds"],
                "dequeue_use_threads": queued["dequeueUseThreads"],
                "dequeue_num_workers": queued["dequeueNumWorkers"],
            },
        },
        "concurrency": {
            "pools": {
                "default_limit": concurrency["pools"]["defaultLimit"],
                "granularity": concurrency["pools"]["granularity"],
            },
            "runs": {
                "max_concurrent_runs": concurrency["runs"]["maxConcurrentRuns"],
                "tag_concurrency_limits": concurrency["runs"]["tagConcurrencyLimits"],
            },
        },
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
        **values["additionalInstanceConfig"],
    }
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    config, _ = dagster_instance_config(str(tmp_path))
    return config


def test_the_instance_is_the_one_deploy_dagster_yaml_describes(local_instance, tmp_path):
    values = helm_values()
    chart = _chart_instance(values, tmp_path)
    for block in (
        "run_coordinator",
        "concurrency",
        "run_monitoring",
        "run_retries",
        "retention",
        "telemetry",
    ):
        assert chart[block] == local_instance[block], block
    # Those blocks are rendered once: the chart's own sections for them are off.
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is False
    assert values["dagsterDaemon"]["runRetries"]["enabled"] is False
    assert values["retention"]["enabled"] is False
    assert chart["run_retries"]["retry_on_asset_or_op_failure"] is False


def test_the_code_location_is_ours_on_kubernetes():
    values = helm_values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "sunny_pipelines.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    # The batch size parses as the code server will parse it.
    assert users_per_run(deployment["env"]) == int(deployment["env"]["SUNNY_USERS_PER_RUN"])
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f'"-p", "{deployment["port"]}"]' in dockerfile
