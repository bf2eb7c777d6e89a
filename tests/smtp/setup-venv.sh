#!/usr/bin/env bash
# Creates a Python virtualenv with aiosmtpd (pinned in requirements.txt), the real SMTP server
# the notification tests send e-mail to (tests/smtp/server.py), and prints the path of its
# python on the last line of stdout.
#
# Usage: tests/smtp/setup-venv.sh [VENV_DIR]   (default: target/smtp-venv). Idempotent.
# CI:    export MILEPOST_SMTP_PYTHON="$(tests/smtp/setup-venv.sh | tail -n1)"
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/smtp-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >&2
fi
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$here/requirements.txt" >&2
"$venv/bin/python" -c "import aiosmtpd" >&2
(cd "$venv/bin" && echo "$(pwd)/python")
