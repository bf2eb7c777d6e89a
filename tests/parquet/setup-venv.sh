#!/usr/bin/env bash
# Creates a Python virtualenv with pyarrow (pinned in requirements.txt), which the analytics
# tests use to read the gateway's Parquet exports back (tests/parquet/read.py), and prints the
# path of its python on the last line of stdout.
#
# Usage: tests/parquet/setup-venv.sh [VENV_DIR]   (default: target/parquet-venv). Idempotent.
# CI:    export MILEPOST_PARQUET_PYTHON="$(tests/parquet/setup-venv.sh | tail -n1)"
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/parquet-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >&2
fi
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$here/requirements.txt" >&2
"$venv/bin/python" -c "import pyarrow.parquet" >&2
(cd "$venv/bin" && echo "$(pwd)/python")
