#!/usr/bin/env bash
# The soak test (tests/soak.rs): real load plus hostile traffic against the release binary,
# a kill -9 and restart half-way, then checks that nothing acked was lost or duplicated and
# that memory stayed flat. Loopback only; stops by itself.
#
#   SOAK_SECS=600 SOAK_DRIVERS=1000 benches/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 65536 2>/dev/null || true
export SOAK_SECS="${SOAK_SECS:-180}" SOAK_DRIVERS="${SOAK_DRIVERS:-500}"
echo "soak: ${SOAK_SECS}s, ${SOAK_DRIVERS} drivers"
exec cargo test --release --test soak -- --ignored --nocapture
