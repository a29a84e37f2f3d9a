"""The users-per-run batch size comes from SUNNY_USERS_PER_RUN (production sets it in the Helm
values, deploy/helm/values.yaml); bad values stop the code location at load with the variable named."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sunny_pipelines.partitions import (
    DEFAULT_USERS_PER_RUN,
    USERS_PER_RUN_ENV,
    USERS_PER_RUN_LIMIT,
    users_per_run,
)

ROOT = Path(__file__).resolve().parents[1]


def test_unset_or_empty_is_the_default():
    assert users_per_run({}) == DEFAULT_USERS_PER_RUN == 50
    assert users_per_run({USERS_PER_RUN_ENV: "  "}) == DEFAULT_USERS_PER_RUN


def test_a_whole_number_in_range_is_taken():
    assert users_per_run({USERS_PER_RUN_ENV: "20"}) == 20
    assert users_per_run({USERS_PER_RUN_ENV: "1"}) == 1
    assert users_per_run({USERS_PER_RUN_ENV: str(USERS_PER_RUN_LIMIT)}) == USERS_PER_RUN_LIMIT


@pytest.mark.parametrize("raw", ["0", "-5", str(USERS_PER_RUN_LIMIT + 1), "twenty", "2.5"])
def test_bad_values_are_refused_naming_the_variable(raw):
    with pytest.raises(ValueError, match=USERS_PER_RUN_ENV):
        users_per_run({USERS_PER_RUN_ENV: raw})


def _in_fresh_interpreter(code: str, users_per_run_value: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, USERS_PER_RUN_ENV: users_per_run_value, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240
    )


def test_the_code_location_batches_backfills_and_sensor_runs_by_the_variable():
    # Read at import, so only a fresh process shows what the code server would do.
    code = """
import json
from sunny_pipelines.definitions import defs
from sunny_pipelines.partitions import range_run_requests
from sunny_pipelines.vocabulary import Trigger
policy = defs.resolve_assets_def("calendar_events").backfill_policy
keys = [f"u{i:02d}" for i in range(20)]
requests = range_run_requests(keys, keys, run_key_prefix="t", trigger=Trigger.SCHEDULE)
print(json.dumps({"max_partitions_per_run": policy.max_partitions_per_run, "runs": len(requests)}))
"""
    done = _in_fresh_interpreter(code, "7")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"max_partitions_per_run": 7, "runs": 3}


def test_a_typo_stops_the_code_location_at_load():
    done = _in_fresh_interpreter("import sunny_pipelines.definitions", "5O")
    assert done.returncode != 0
    assert f"{USERS_PER_RUN_ENV} must be a whole number of users, got '5O'" in done.stderr
