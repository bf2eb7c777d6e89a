#!/usr/bin/env bash
# Creates a Python virtualenv with the OpenAPI checkers of tests/openapi.rs (a standard
# validator and schemathesis, pinned in requirements.txt) and prints its directory on the last
# line of stdout.
#
# Usage: tests/openapi/setup-venv.sh [VENV_DIR]   (default: target/openapi-venv). Idempotent.
# CI:    export MILEPOST_OPENAPI_VENV="$(tests/openapi/setup-venv.sh | tail -n1)"
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/openapi-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >&2
fi
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$here/requirements.txt" >&2
"$venv/bin/openapi-spec-validator" --help >/dev/null
"$venv/bin/schemathesis" --version >&2
(cd "$venv" && pwd)
