#!/usr/bin/env bash
# Creates a Python virtualenv with the Milepost Python client's dependencies (aioquic, pinned in
# requirements.txt) and prints the path of its python on the last line of stdout.
#
# Usage: clients/python/setup-venv.sh [VENV_DIR]     (default: target/pyenv, relative to the
#        workspace root). Idempotent: an existing venv is reused and only `pip install` re-runs.
#
# CI:    export MILEPOST_PYTHON="$(clients/python/setup-venv.sh | tail -n1)"
#        cargo test --test python_client
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/pyenv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >&2
fi
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$here/requirements.txt" >&2
"$venv/bin/python" -c "import aioquic" >&2
# Absolute path, last line of stdout.
(cd "$venv/bin" && echo "$(pwd)/python")
