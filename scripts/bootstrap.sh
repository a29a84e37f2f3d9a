# Sourced by the other scripts: make .venv hold this project and its dependencies.
# Reinstalls only when pyproject.toml, setup.py or deploy/constraints.txt changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PYTHON --version)" >&2
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.sunny-installed"
want="$(sha256sum pyproject.toml setup.py deploy/constraints.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing sunny_pipelines and its dependencies into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >&2
  # The pins the production image ships (deploy/constraints.txt): tests run against the same versions.
  .venv/bin/python -m pip install -q -c deploy/constraints.txt -e ".[dev]" >&2
  echo "$want" > "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"

# Start the local PostgreSQL cluster if this machine has one and it is down.
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 1; done
  fi
  echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2
  return 1
}

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
# Installed with apt when missing; a no-op once /usr/bin/chromium (or $SUNNY_CHROMIUM) exists.
ensure_chromium() {
  if [ -x "${SUNNY_CHROMIUM:-/usr/bin/chromium}" ]; then return 0; fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "/usr/bin/chromium is missing and there is no apt-get: install Chromium for the browser tests" >&2
    return 1
  fi
  echo "installing chromium (apt) for the browser tests" >&2
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium >&2
}
