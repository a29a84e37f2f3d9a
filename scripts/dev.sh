#!/usr/bin/env bash
# Quick start: from a fresh clone to the Dagster UI on embedded defaults.
# Creates .venv, migrates a local SQLite database, starts the sandbox emulator with demo users,
# the webhook receiver and the frontend API, connects the users through the frontend API's Google
# connect flow (the sandbox consents at once), and runs `dagster dev`.
source "$(dirname "$0")/bootstrap.sh"

export SUNNY_HOME="${SUNNY_HOME:-$ROOT/.sunny}"
SANDBOX_PORT="${SUNNY_SANDBOX_PORT:-8765}"
export SUNNY_SANDBOX_URL="${SUNNY_SANDBOX_URL:-http://127.0.0.1:$SANDBOX_PORT}"
WEBHOOK_PORT="${SUNNY_WEBHOOK_PORT:-8780}"
# Google channels deliver to the receiver; the sandbox signs Pub/Sub pushes for this audience.
export SUNNY_WEBHOOK_BASE_URL="${SUNNY_WEBHOOK_BASE_URL:-http://127.0.0.1:$WEBHOOK_PORT}"
export SUNNY_PUBSUB_AUDIENCE="${SUNNY_PUBSUB_AUDIENCE:-$SUNNY_WEBHOOK_BASE_URL/webhooks/google/gmail}"
export SUNNY_PUBSUB_SERVICE_ACCOUNT="${SUNNY_PUBSUB_SERVICE_ACCOUNT:-sandbox-pubsub@sunny-sandbox.iam.gserviceaccount.com}"
# Gmail publishes mailbox changes to this topic; the sandbox's push subscription on it delivers
# them, signed, to the receiver (as `gcloud pubsub subscriptions create --push-endpoint` would).
export SUNNY_GMAIL_PUBSUB_TOPIC="${SUNNY_GMAIL_PUBSUB_TOPIC:-projects/sunny-local/topics/gmail-push}"
# Attendee is the sandbox too; its webhooks are signed with this project secret (base64).
export SUNNY_ATTENDEE_URL="${SUNNY_ATTENDEE_URL:-$SUNNY_SANDBOX_URL}"
# So is the AI provider (an OpenAI-compatible API).
export SUNNY_AI_BASE_URL="${SUNNY_AI_BASE_URL:-$SUNNY_SANDBOX_URL/v1}"
# The frontend API (connect Google, sync now, sync status) and the key the frontend calls it with.
FRONTEND_API_PORT="${SUNNY_FRONTEND_API_PORT:-8790}"
FRONTEND_API_URL="http://127.0.0.1:$FRONTEND_API_PORT"
export SUNNY_FRONTEND_API_KEY="${SUNNY_FRONTEND_API_KEY:-sunny-local-frontend-key}"
export SUNNY_OAUTH_REDIRECT_URI="${SUNNY_OAUTH_REDIRECT_URI:-$FRONTEND_API_URL/oauth/google/callback}"
export SUNNY_ATTENDEE_WEBHOOK_SECRET="${SUNNY_ATTENDEE_WEBHOOK_SECRET:-c3VubnktbG9jYWwtYXR0ZW5kZWUtd2ViaG9vay1zZWNyZXQ=}"
export DAGSTER_HOME="$SUNNY_HOME/dagster_home"
mkdir -p "$DAGSTER_HOME"
cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
# Each pool's own limit (dagster.yaml can only set their default): sunny_pipelines/pools.py.
python -m sunny_pipelines.pools apply > /dev/null

python -m sunny_pipelines.db upgrade

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

wait_healthy() {  # url, name, log
  for _ in $(seq 1 100); do
    python - "$1" <<'PY' && return 0
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except Exception:
    sys.exit(1)
PY
    sleep 0.2
  done
  echo "$2 did not start; see $3" >&2
  exit 1
}

python -m sunny_pipelines.sandbox --port "$SANDBOX_PORT" --users "${SUNNY_DEMO_USERS:-5}" \
  --pubsub-subscription "$SUNNY_GMAIL_PUBSUB_TOPIC=$SUNNY_WEBHOOK_BASE_URL/webhooks/google/gmail,$SUNNY_PUBSUB_AUDIENCE" \
  --attendee-webhook "$SUNNY_WEBHOOK_BASE_URL/webhooks/attendee" --attendee-webhook-secret "$SUNNY_ATTENDEE_WEBHOOK_SECRET" \
  > "$SUNNY_HOME/sandbox.log" 2>&1 &
pids+=($!)
wait_healthy "$SUNNY_SANDBOX_URL/healthz" sandbox "$SUNNY_HOME/sandbox.log"
echo "sandbox: $SUNNY_SANDBOX_URL (log: $SUNNY_HOME/sandbox.log)"

python -m sunny_pipelines.webhooks --port "$WEBHOOK_PORT" > "$SUNNY_HOME/webhooks.log" 2>&1 &
pids+=($!)
wait_healthy "$SUNNY_WEBHOOK_BASE_URL/healthz" "webhook receiver" "$SUNNY_HOME/webhooks.log"
echo "webhook receiver: $SUNNY_WEBHOOK_BASE_URL (log: $SUNNY_HOME/webhooks.log)"

python -m sunny_pipelines.frontend_api --port "$FRONTEND_API_PORT" > "$SUNNY_HOME/frontend_api.log" 2>&1 &
pids+=($!)
wait_healthy "$FRONTEND_API_URL/healthz" "frontend API" "$SUNNY_HOME/frontend_api.log"
echo "frontend API: $FRONTEND_API_URL (OpenAPI: $FRONTEND_API_URL/docs; key: \$SUNNY_FRONTEND_API_KEY; log: $SUNNY_HOME/frontend_api.log)"

# Each demo user connects Google through the frontend API's OAuth flow, as a browser would (the
# sandbox's consent screen agrees at once for the user named by login_hint).
python -m sunny_pipelines.sandbox connect-users --url "$SUNNY_SANDBOX_URL" --through "$FRONTEND_API_URL"

first_email="$(python - "$SUNNY_SANDBOX_URL" <<'PY'
import json, sys, urllib.request
print(json.load(urllib.request.urlopen(sys.argv[1] + "/sandbox/users", timeout=5))[0]["email"])
PY
)"
echo "connect (or reconnect) a Google account in a browser: $FRONTEND_API_URL/oauth/google/start?login_hint=$first_email"

echo "Dagster UI: http://127.0.0.1:${DAGSTER_PORT:-3000} (the users sensor adds the demo users' partitions and syncs them)"
dagster dev -w workspace.yaml -h 127.0.0.1 -p "${DAGSTER_PORT:-3000}"
