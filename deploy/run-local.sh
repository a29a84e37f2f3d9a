#!/usr/bin/env bash
# Try the production layout (deploy/README.md) on this machine: Dagster's runs, event log and
# schedules in PostgreSQL, the code location served by `dagster api grpc`, the daemon and the
# webserver reading deploy/workspace.yaml, and the webhook receiver as a service of its own.
# Google, Attendee and the AI provider are the local sandbox (in production: SUNNY_SANDBOX_URL=disabled
# and the real endpoints). Databases are created if missing; Ctrl-C stops every part.
source "$(dirname "$0")/../scripts/bootstrap.sh"
ensure_postgres

PG_SERVER="${SUNNY_PG_SERVER:-postgresql+psycopg2://postgres@127.0.0.1:5432}"
export SUNNY_DATABASE_URL="${SUNNY_DATABASE_URL:-$PG_SERVER/sunny_deploy_local}"
export DAGSTER_PG_URL="${DAGSTER_PG_URL:-$PG_SERVER/sunny_deploy_local_dagster}"
export SUNNY_HOME="${SUNNY_HOME:-$ROOT/.sunny/deploy-local}"
export DAGSTER_HOME="$SUNNY_HOME/dagster_home"
export DAGSTER_GRPC_HOST="${DAGSTER_GRPC_HOST:-127.0.0.1}"
export DAGSTER_GRPC_PORT="${DAGSTER_GRPC_PORT:-4266}"
WEBSERVER_PORT="${DAGSTER_PORT:-3000}"
SANDBOX_PORT="${SUNNY_SANDBOX_PORT:-8765}"
WEBHOOK_PORT="${SUNNY_WEBHOOK_PORT:-8780}"

# The sandbox stands in for Google, Attendee and the AI provider.
export SUNNY_SANDBOX_URL="${SUNNY_SANDBOX_URL:-http://127.0.0.1:$SANDBOX_PORT}"
export SUNNY_ATTENDEE_URL="${SUNNY_ATTENDEE_URL:-$SUNNY_SANDBOX_URL}"
export SUNNY_AI_BASE_URL="${SUNNY_AI_BASE_URL:-$SUNNY_SANDBOX_URL/v1}"
export SUNNY_WEBHOOK_BASE_URL="${SUNNY_WEBHOOK_BASE_URL:-http://127.0.0.1:$WEBHOOK_PORT}"
export SUNNY_PUBSUB_AUDIENCE="${SUNNY_PUBSUB_AUDIENCE:-$SUNNY_WEBHOOK_BASE_URL/webhooks/google/gmail}"
export SUNNY_PUBSUB_SERVICE_ACCOUNT="${SUNNY_PUBSUB_SERVICE_ACCOUNT:-sandbox-pubsub@sunny-sandbox.iam.gserviceaccount.com}"
export SUNNY_GMAIL_PUBSUB_TOPIC="${SUNNY_GMAIL_PUBSUB_TOPIC:-projects/sunny-local/topics/gmail-push}"
export SUNNY_ATTENDEE_WEBHOOK_SECRET="${SUNNY_ATTENDEE_WEBHOOK_SECRET:-c3VubnktbG9jYWwtYXR0ZW5kZWUtd2ViaG9vay1zZWNyZXQ=}"

mkdir -p "$DAGSTER_HOME"
cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
# Every part must encrypt and decrypt tokens with the same key: one is made once and kept here.
if [ -z "${SUNNY_TOKEN_KEY:-}" ]; then
  [ -f "$SUNNY_HOME/token.key" ] || python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())" > "$SUNNY_HOME/token.key"
  SUNNY_TOKEN_KEY="$(cat "$SUNNY_HOME/token.key")"
  export SUNNY_TOKEN_KEY
fi

python - "$SUNNY_DATABASE_URL" "$DAGSTER_PG_URL" <<'PY'
import sys
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
for url in map(make_url, sys.argv[1:]):
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}).first():
            conn.execute(text(f'CREATE DATABASE "{url.database}"'))
            print(f"created database {url.database}")
    admin.dispose()
PY
python -m sunny_pipelines.db upgrade
# Each pool's own limit (sunny_pipelines/pools.py), as every deploy does.
python -m sunny_pipelines.pools apply

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # The code server may wait on its run workers: give every part 10 s, then kill what is left.
  for _ in $(seq 1 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

wait_ready() {  # name, log, check command...
  local name="$1" log="$2"
  shift 2
  for _ in $(seq 1 150); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$name did not start; see $log" >&2
  exit 1
}
http_ok() { python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1"; }

python -m sunny_pipelines.sandbox --port "$SANDBOX_PORT" --users "${SUNNY_DEMO_USERS:-5}" \
  --pubsub-subscription "$SUNNY_GMAIL_PUBSUB_TOPIC=$SUNNY_WEBHOOK_BASE_URL/webhooks/google/gmail,$SUNNY_PUBSUB_AUDIENCE" \
  --attendee-webhook "$SUNNY_WEBHOOK_BASE_URL/webhooks/attendee" --attendee-webhook-secret "$SUNNY_ATTENDEE_WEBHOOK_SECRET" \
  > "$SUNNY_HOME/sandbox.log" 2>&1 &
pids+=($!)
wait_ready sandbox "$SUNNY_HOME/sandbox.log" http_ok "$SUNNY_SANDBOX_URL/healthz"
echo "sandbox: $SUNNY_SANDBOX_URL"

python -m sunny_pipelines.webhooks --port "$WEBHOOK_PORT" > "$SUNNY_HOME/receiver.log" 2>&1 &
pids+=($!)
wait_ready "webhook receiver" "$SUNNY_HOME/receiver.log" http_ok "$SUNNY_WEBHOOK_BASE_URL/healthz"
echo "webhook receiver: $SUNNY_WEBHOOK_BASE_URL"

python -m sunny_pipelines.sandbox connect-users --url "$SUNNY_SANDBOX_URL"

dagster api grpc -m sunny_pipelines.definitions -h "$DAGSTER_GRPC_HOST" -p "$DAGSTER_GRPC_PORT" \
  > "$SUNNY_HOME/code_server.log" 2>&1 &
pids+=($!)
wait_ready "code server" "$SUNNY_HOME/code_server.log" \
  dagster api grpc-health-check -h "$DAGSTER_GRPC_HOST" -p "$DAGSTER_GRPC_PORT"
echo "code server: grpc://$DAGSTER_GRPC_HOST:$DAGSTER_GRPC_PORT"

dagster-daemon run -w deploy/workspace.yaml > "$SUNNY_HOME/daemon.log" 2>&1 &
pids+=($!)
echo "daemon: log in $SUNNY_HOME/daemon.log"

echo "Dagster UI: http://127.0.0.1:$WEBSERVER_PORT (runs, event log and schedules in PostgreSQL: DAGSTER_PG_URL)"
dagster-webserver -w deploy/workspace.yaml -h 127.0.0.1 -p "$WEBSERVER_PORT"
