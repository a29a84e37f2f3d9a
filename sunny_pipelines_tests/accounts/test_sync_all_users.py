"""`sync_all_users` (the old `sync_all_users()`): every service's sync for the selected users."""

import dagster as dg

from sunny_pipelines.definitions import build_defs
from sunny_pipelines_tests.runs import materialized, run_range


def test_sync_all_users_syncs_every_service_for_the_range_only(resources, connected_users):
    defs = build_defs(resources)
    keys = [grant["id"] for grant in connected_users]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        # An operator's backfill of the first two users (no trigger tag: everyone in the range).
        result = run_range(defs, instance, "sync_all_users", keys[:2])
        assert result.success
        for asset in ("calendar_events", "drive_files", "emails"):
            assert materialized(instance, asset) == set(keys[:2]), asset
