#!/usr/bin/env bash
# Fix-to-recipient-update latency against a release gateway pinned to one core, with the
# drivers and recipients (benches/feed_latency.rs) pinned to the other, like benches/load.sh.
#
#   benches/feed_latency.sh                       # 5k, 10k, 20k drivers (+ as many recipients)
#   STEPS="2000" SECS=10 benches/feed_latency.sh  # a quick run
#
# It prints the latency and the gateway's CPU per fix over the measured window (from /proc).
# RECIPIENTS=0 runs the drivers alone (no parcel followed): the CPU per fix without updates.
#
# Environment: GW_BIN (another gateway binary, for before/after runs), GW_EXTRA (config lines
# added to the gateway's, e.g. "[limits]\nphone_ack_delay_ms = 0"), STEPS (5000 10000 20000),
# SECS measured per step (20), GW_CORE/CLIENT_CORE (0/1), PORT (4498), ADMIN_PORT (TCP, 4497), GW_LOG (the gateway's RUST_LOG, warn), OUT
# (target/feed-latency: results, the gateway's log and its /metrics at the end of each step).
# Take the shared bench lock around it on a shared box.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-"5000 10000 20000"}
SECS=${SECS:-20}
GW_CORE=${GW_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
PORT=${PORT:-4498}
ADMIN_PORT=${ADMIN_PORT:-4497}
OUT=${OUT:-target/feed-latency}
mkdir -p "$OUT"
cargo build --release --quiet --bin milepost
cargo bench --no-run --quiet --bench feed_latency
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
GW_PID=
DATA=
cleanup() {
    if [[ -n $GW_PID ]] && kill -0 "$GW_PID" 2>/dev/null; then
        kill -TERM "$GW_PID" 2>/dev/null || true
        wait "$GW_PID" 2>/dev/null || true
    fi
    if [[ -n $DATA ]]; then rm -rf "$DATA"; fi
    GW_PID=
    DATA=
}
trap cleanup EXIT INT TERM
for N in $STEPS; do
    DATA=$(mktemp -d -t milepost-feed.XXXXXX)
    echo "admin_listen = \"127.0.0.1:$ADMIN_PORT\"" >"$DATA/bench.toml"
    # GW_EXTRA: more lines for the gateway's config (another knob, for before/after runs).
    if [[ -n ${GW_EXTRA:-} ]]; then printf '%b\n' "$GW_EXTRA" >>"$DATA/bench.toml"; fi
    RUST_LOG=${GW_LOG:-warn} taskset -c "$GW_CORE" "${GW_BIN:-target/release/milepost}" serve --listen "127.0.0.1:$PORT" \
        --data-dir "$DATA" --config "$DATA/bench.toml" >"$OUT/gateway-$N.log" 2>&1 &
    GW_PID=$!
    for _ in $(seq 100); do
        [[ -s $DATA/secret.key && -s $DATA/certs/ca.pem ]] && break
        sleep 0.1
    done
    sleep 0.5
    if [[ ${RECIPIENTS:-1} == 0 ]]; then echo "== $N drivers, no recipients" >&2; else echo "== $N drivers and $N recipients" >&2; fi
    GATEWAY="127.0.0.1:$PORT" DATA_DIR="$DATA" GW_PID=$GW_PID DRIVERS=$N SECS=$SECS \
        timeout $(( N / 250 + SECS + 120 )) taskset -c "$CLIENT_CORE" \
        cargo bench --quiet --bench feed_latency 2>"$OUT/bench-$N.log" | tee -a "$OUT/results.txt"
    # The gateway's own view of the run (fsync latency, feed lag...), for when p99 looks odd.
    curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" >"$OUT/metrics-$N.txt" || true
    cleanup
    sleep 1
done
