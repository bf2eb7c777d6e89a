#!/usr/bin/env bash
# API bench: parcel status lookups over HTTP (`GET /api/v1/parcels/{tracking}`) while
# simulated drivers stream fixes, and what that load does to the drivers' ack latency.
#
# A release gateway on one core; on the other, `milepost replay` (the drivers) and wrk (the
# lookups, one thread). Two phases on the same gateway, same data:
#   A. drivers alone for DURATION seconds          -> ingest ack p50/p99
#   B. drivers and lookups for DURATION seconds     -> ingest ack p50/p99, lookups/s, lookup p99
# and prints both with the ratio of the ingest p99s (B/A).
#
#   benches/api.sh                                   # 5000 drivers, 20 s phases
#   DRIVERS=2000 DURATION=10 benches/api.sh          # a quick run
#
# Knobs (environment):
#   DRIVERS      simulated drivers                               (5000)
#   DURATION     seconds of each phase                           (20)
#   PARCELS      parcels on the routes looked up                 (5000)
#   CONNS        wrk connections                                 (32)
#   DELAY_MS     pause of each connection between lookups, ms    (0: as fast as it goes)
#   TRACE        GPS trace replayed   (../shared/data/geolife_sample/geolife_sample.txt.gz)
#   PORT, WEB    QUIC and web ports on 127.0.0.1                 (4497, 8097)
#   OUT          where logs and reports go                       (target/api-bench)
#   WEB_THREADS  the web listener's own threads (web.threads; 0 = the gateway's runtime) (1)
#   WEB_NICE     their CPU priority (web.nice)                                       (10)
#   WRK_NICE     wrk's CPU priority on the client core it shares with the replay, whose
#                ack latencies are the measurement (0: as high as the replay's)      (0)
#   NO_BUILD=1   use target/release/milepost as it is
#
# Needs wrk (Debian package `wrk`) and jq.
set -euo pipefail
cd "$(dirname "$0")/.."

DRIVERS=${DRIVERS:-5000}
DURATION=${DURATION:-20}
PARCELS=${PARCELS:-5000}
CONNS=${CONNS:-32}
DELAY_MS=${DELAY_MS:-0}
TRACE=${TRACE:-../shared/data/geolife_sample/geolife_sample.txt.gz}
PORT=${PORT:-4497}
WEB=${WEB:-8097}
OUT=${OUT:-target/api-bench}
GW_CORE=${GW_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
WEB_THREADS=${WEB_THREADS:-1}
WEB_NICE=${WEB_NICE:-10}
WRK_NICE=${WRK_NICE:-0}
DEPOT=bench

for tool in wrk jq; do
    command -v "$tool" >/dev/null || { echo "api bench needs $tool" >&2; exit 1; }
done
[[ -f $TRACE ]] || { echo "trace $TRACE not found (set TRACE=...)" >&2; exit 1; }
if [[ -z ${NO_BUILD:-} ]]; then
    cargo build --release --quiet --bin milepost
fi
BIN=target/release/milepost
mkdir -p "$OUT"

GW_PID=
DATA=$(mktemp -d -t milepost-api.XXXXXX)
cleanup() {
    if [[ -n $GW_PID ]] && kill -0 "$GW_PID" 2>/dev/null; then
        kill -TERM "$GW_PID" 2>/dev/null || true
        wait "$GW_PID" 2>/dev/null || true
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT INT TERM

KEY=$("$BIN" key create --data-dir "$DATA" --name bench --scope "backoffice:$DEPOT" 2>/dev/null)
cat >"$DATA/bench.toml" <<EOF
admin_listen = "127.0.0.1:0"
[web]
listen = "127.0.0.1:$WEB"
threads = $WEB_THREADS
nice = $WEB_NICE
[web.api]
rate_per_s = 1000000
burst = 1000000
EOF
RUST_LOG=${GW_LOG:-warn} taskset -c "$GW_CORE" "$BIN" serve --listen "127.0.0.1:$PORT" \
    --data-dir "$DATA" --config "$DATA/bench.toml" >"$OUT/gateway.log" 2>&1 &
GW_PID=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$WEB/api/v1/openapi.json" && break
    sleep 0.1
done

# Routes of 100 stops, one parcel each, for drivers that do not stream (the lookups' parcels).
NOW_MS=$(( $(date +%s) * 1000 ))
for (( r = 0; r < PARCELS / 100; r++ )); do
    jq -n --argjson r "$r" --arg depot "$DEPOT" --argjson t0 "$NOW_MS" '{
        id: "BR-\($r)", depot: $depot, driver: "bench-driver-\($r)", planned_start_ms: $t0,
        stops: [range(100) as $s | {
            id: "S\($s)", lat: (45.0 + $r * 0.01), lon: (13.0 + $s * 0.001),
            parcels: [{tracking: "BP-\($r * 100 + $s)"}],
            window: {start_ms: ($t0 + 3600000), end_ms: ($t0 + 7200000)} }] }' |
        curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $KEY" \
            -H 'Content-Type: application/json' --data @- \
            "http://127.0.0.1:$WEB/api/v1/routes/BR-$r"
done
echo "api bench: $DRIVERS drivers, $PARCELS parcels, ${DURATION}s phases, $CONNS connections, ${DELAY_MS} ms apart, web threads $WEB_THREADS at nice $WEB_NICE, wrk at nice $WRK_NICE" >&2

replay() {
    taskset -c "$CLIENT_CORE" "$BIN" replay --trace "$TRACE" --server "127.0.0.1:$PORT" \
        --data-dir "$DATA" --drivers "$DRIVERS" --rate 1 --duration "${DURATION}s" \
        --ramp "$(( DRIVERS * 3 / 1000 ))s" --json "$OUT/replay-$1.json" \
        >"$OUT/replay-$1.txt" 2>"$OUT/replay-$1.log"
}

cat >"$OUT/lookup.lua" <<EOF
local i = 0
wrk.headers["Authorization"] = "Bearer $KEY"
request = function()
    i = (i + 7919) % $PARCELS
    return wrk.format("GET", "/api/v1/parcels/BP-" .. i)
end
EOF
if (( DELAY_MS > 0 )); then
    printf 'delay = function()\n    return %s\nend\n' "$DELAY_MS" >>"$OUT/lookup.lua"
fi

replay alone
# Phase B: the lookups start once the drivers are connected (after the ramp).
replay with &
REPLAY_PID=$!
sleep "$(( DRIVERS * 3 / 1000 + 2 ))"
nice -n "$WRK_NICE" taskset -c "$CLIENT_CORE" wrk -t1 -c"$CONNS" -d"$(( DURATION - 4 ))s" --latency \
    -s "$OUT/lookup.lua" "http://127.0.0.1:$WEB" >"$OUT/wrk.txt" 2>&1
wait "$REPLAY_PID"

p() { jq -r ".window.latency.$2 / 1000 | (. * 100 | round) / 100" "$OUT/replay-$1.json"; }
A99=$(p alone p99_us)
B99=$(p with p99_us)
RPS=$(awk '/^Requests\/sec/ { print int($2) }' "$OUT/wrk.txt")
L99=$(awk '$1 == "99%" { print $2 }' "$OUT/wrk.txt")
L50=$(awk '$1 == "50%" { print $2 }' "$OUT/wrk.txt")
NON2XX=$(awk '/Non-2xx/ { print $4 }' "$OUT/wrk.txt")
{
    printf 'phase\tingest_p50_ms\tingest_p99_ms\tlookups/s\tlookup_p50\tlookup_p99\tnon-2xx\n'
    printf 'drivers alone\t%s\t%s\t-\t-\t-\t-\n' "$(p alone p50_us)" "$A99"
    printf 'drivers + lookups\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(p with p50_us)" "$B99" "$RPS" "$L50" "$L99" "${NON2XX:-0}"
} | column -t -s $'\t'
echo "ingest p99 with lookups / without: $(jq -n "$B99 / $A99 * 100 | round / 100")"
