#!/usr/bin/env bash
# Reconnect storm: N simulated drivers stream fixes at 1 Hz; the gateway is restarted (SIGTERM,
# then started again on the same port and data directory) in the middle of the run. Prints how
# long after the restarted gateway was ready all drivers were connected again, and the ack
# latency over the run. Loopback only; stops by itself.
#
#   DRIVERS=10000 benches/storm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DRIVERS=${DRIVERS:-10000}
PORT=${PORT:-4498}
OUT=${OUT:-target/storm}
TRACE=${TRACE:-../shared/data/geolife_sample/geolife_sample.txt.gz}
[[ -n ${NO_BUILD:-} ]] || cargo build --release --quiet --bin milepost
BIN=target/release/milepost
mkdir -p "$OUT"
DATA=$(mktemp -d)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export MILEPOST_ADMIN_LISTEN=127.0.0.1:0
start_gw() {
    taskset -c 0 "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" >>"$OUT/gateway.log" 2>&1 &
    GW=$!
    for _ in $(seq 1 300); do grep -q "addr=" "$OUT/gateway.log" 2>/dev/null && [[ $(grep -c "addr=" "$OUT/gateway.log") -ge $1 ]] && return; sleep 0.05; done
    echo "gateway did not start" >&2; exit 1
}
: >"$OUT/gateway.log"
start_gw 1
RAMP=$(( DRIVERS / 1000 * 2 + 1 ))
taskset -c 1 "$BIN" replay --trace "$TRACE" --format geolife --server "127.0.0.1:$PORT" --data-dir "$DATA" \
    --drivers "$DRIVERS" --rate 1 --duration 60s --ramp "${RAMP}s" --reconnect-for 60s >"$OUT/replay.txt" 2>"$OUT/replay.log" &
RP=$!
sleep $(( RAMP + 20 ))
kill -TERM "$GW"; wait "$GW" || true
start_gw 2
READY=$(date +%s.%N)
echo "gateway restarted; ready at $READY"
# Watch the replay's per-second progress lines for the moment every driver is back.
BACK=
for _ in $(seq 1 600); do
    line=$(tr '\r' '\n' <"$OUT/replay.log" | grep "connected" | tail -1 || true)
    c=$(sed -E 's/.*connected +([0-9]+)\/.*/\1/' <<<"$line")
    if [[ ${c:-0} -ge $DRIVERS ]] && [[ -z $BACK ]]; then
        BACK=$(date +%s.%N)
        break
    fi
    sleep 0.1
done
wait "$RP" || true
kill -TERM "$GW" 2>/dev/null || true; wait "$GW" 2>/dev/null || true
rm -rf "$DATA"
if [[ -n $BACK ]]; then
    printf "all %d drivers connected again %.1f s after the gateway was ready\n" "$DRIVERS" "$(echo "$BACK - $READY" | bc)"
else
    echo "not every driver came back within 60 s"
fi
grep -E "reconnects|TLS|ack latency \(all\)|fixes " "$OUT/replay.txt" || true
grep -c "resumed" "$OUT/gateway.log" >/dev/null || true
