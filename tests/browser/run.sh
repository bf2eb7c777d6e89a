#!/usr/bin/env bash
# Browser tests of the web pages: installs what they need (Debian's Chromium, node and npm,
# playwright-core pinned by package-lock.json), then runs tests/browser.rs, which starts an
# in-process gateway, drives the example route and runs e2e.mjs in headless Chromium, then
# runs a sped-up `milepost demo` day watched by demo.mjs.
# Screenshots and metrics.json land in target/browser-artifacts/ (or $CARGO_TARGET_DIR/...).
# Exits non-zero on any failure.
#
#   bash tests/browser/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@"
}

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    echo "browser tests: installing chromium" >&2
    apt_install chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "browser tests: installing node and npm" >&2
    apt_install nodejs npm
fi

(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

export CHROMIUM
MILEPOST_BROWSER_TESTS=1 cargo test --test browser -- --nocapture
