"""Whether the runs that claimed inbox rows are still live, as Dagster knows them."""

from collections.abc import Collection

import dagster as dg


def finished_runs(instance: dg.DagsterInstance, run_ids: Collection[str]) -> set[str]:
    """The runs among ``run_ids`` that are over (or unknown to the instance): their claims are void."""
    finished = set()
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            finished.add(run_id)
    return finished
