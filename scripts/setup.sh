#!/usr/bin/env bash
# Set up the project without root: a virtualenv in .venv with indmlops and its pinned services (MLflow,
# SeaweedFS, supervisor, ...), and Node-RED 4.1.8 from config/nodered/package-lock.json. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

py=${PYTHON:-python3}
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python >= 3.11 is required ($py is $("$py" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$py" -m venv .venv
fi
stamp=.venv/.indmlops-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing indmlops and its Python dependencies into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[suite,test]'
  touch "$stamp"
else
  echo "setup: .venv up to date"
fi

nr=config/nodered
if [ ! -f "$nr/node_modules/node-red/package.json" ] || [ "$nr/package-lock.json" -nt "$nr/node_modules/.package-lock.json" ]; then
  command -v npm >/dev/null || { echo "setup: npm is missing: run sudo scripts/install-system-packages.sh" >&2; exit 1; }
  echo "setup: installing Node-RED (npm ci in $nr)"
  (cd "$nr" && npm ci --no-audit --no-fund --omit=dev --loglevel=error)
else
  echo "setup: Node-RED up to date"
fi
