"""Loading the code location stays cheap: `sunny_pipelines.definitions` imports no openai, pandas
or numpy (checked in a fresh interpreter)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Only the AI runs (openai) and the sync-optimization run (pandas, numpy) use these.
RUN_ONLY_MODULES = ("openai", "pandas", "numpy")


def test_loading_the_code_location_imports_no_run_only_library():
    code = (
        "import json, sys\n"
        "import sunny_pipelines.definitions\n"
        f"print(json.dumps([m for m in {list(RUN_ONLY_MODULES)!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], (
        f"importing sunny_pipelines.definitions loaded {loaded}: every Dagster run process imports "
        "the code location, and these are only needed by the AI and sync-optimization runs; import "
        "them inside the functions that use them"
    )
