#!/usr/bin/env bash
# The test command: installs what is missing, starts PostgreSQL if needed, lints, runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k calendar -x).
source "$(dirname "$0")/bootstrap.sh"
ensure_postgres
ensure_chromium
export SUNNY_TEST_DATABASE_URL="${SUNNY_TEST_DATABASE_URL:-postgresql+psycopg2://postgres@127.0.0.1:5432/sunny_test}"
ruff check sunny_pipelines sunny_pipelines_tests
ruff format --check sunny_pipelines sunny_pipelines_tests
DAGSTER_HOME="$(mktemp -d)" dagster definitions validate -m sunny_pipelines.definitions 2>&1 | tail -n 2
exec pytest -p no:cacheprovider "$@"
