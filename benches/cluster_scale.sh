#!/usr/bin/env bash
# What a gateway spends following the fleet, by fold mode and gateway count (issue 25): GATEWAYS
# gateways over one nats-server; every phone is sent to g0 (DRIVERS at 1 fix/s, spread over
# DEPOTS depots). With FOLD=all, g1.. take none and only follow the stream: their CPU per fleet
# fix is the follow cost. With FOLD=owned each gateway folds only the partitions of depots it
# leases (PARTITIONS of them, spread evenly) and takes only their phones: g0 refuses the others
# with ServerBusy naming the holder, and `replay` reconnects them there, so each gateway's CPU
# per fleet fix is its whole share (its phones and its fold) of a fixed load. Run it for
# FOLD=owned GATEWAYS=1 (everything on one) and GATEWAYS=2,3. Prints, over a 10 s window in
# the steady state, each process's CPU and each gateway's CPU per fleet fix (µs). Needs
# nats-server and jq; loopback only; stops only what it started. CLUSTER_TOML adds lines to the
# [cluster] section, e.g. CLUSTER_TOML='group_linger_us = 10000' (bigger groups: fewer, fuller
# messages, as a loaded gateway would publish). PERF=1 records a profile of g1 into
# $OUT/perf.data. ROUTES=1 gives every driver a route first (benches/sim_routes.py).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -n ${NO_BUILD:-} ]] || cargo build --release --quiet --bin milepost
N=${GATEWAYS:-3}; DRIVERS=${DRIVERS:-3000}; FOLD=${FOLD:-owned}; PARTS=${PARTITIONS:-12}
OUT=${OUT:-target/cluster-scale}; mkdir -p "$OUT"
. benches/cluster_lib.sh
start_nats
G=()
for i in $(seq 0 $((N-1))); do
    mkdir -p "$W/g$i"
    {
        echo 'admin_listen = "127.0.0.1:0"'
        if [ "$i" -gt 0 ]; then printf 'cert = "%s"\nkey = "%s"\n' "$W/g0/certs/server.pem" "$W/g0/certs/server.key"; fi
        printf '[cluster]\nfold = "%s"\npartitions = %s\nlease_ttl_s = 3\n%b\n' "$FOLD" "$PARTS" "${CLUSTER_TOML:-}"
    } > "$W/g$i/b.toml"
    MILEPOST_SECRET=$S RUST_LOG=warn,milepost::cluster=info,milepost::cli=info target/release/milepost serve \
        --config "$W/g$i/b.toml" --listen 127.0.0.1:0 --data-dir "$W/g$i" --cluster "nats://$URL" \
        --node "g$i" > "$OUT/g$i.log" 2>&1 &
    G+=($!); PIDS+=($!)
    sleep 1.5
done
# Leases settle within a few renewals (lease_ttl_s / 3 each).
sleep 4
PORT=$(grep -o "addr=127.0.0.1:[0-9]*" "$OUT/g0.log" | head -1 | cut -d: -f2)
[ -n "$PORT" ] || { echo "g0 did not start: $OUT/g0.log" >&2; exit 1; }
TRACE=../shared/data/geolife_sample/geolife_sample.txt.gz
[ -z "${ROUTES:-}" ] || load_routes "$PORT" "$TRACE"
target/release/milepost replay --trace ../shared/data/geolife_sample/geolife_sample.txt.gz \
    --format geolife --server "127.0.0.1:$PORT" --ca "$W/g0/certs/ca.pem" --secret $S \
    --drivers "$DRIVERS" --depots "${DEPOTS:-48}" --rate 1 --duration 25s --ramp 5s \
    --gateway-pid "${G[0]}" --json "$OUT/r.json" > "$OUT/r.txt" 2>"$OUT/r.log" &
RP=$!; PIDS+=($RP)
t() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
sleep 12
declare -A A B
for p in "${G[@]}" $NP; do A[$p]=$(t "$p"); done
if [ -n "${PERF:-}" ]; then perf record -e cpu-clock -g -p "${G[1]}" -o "$OUT/perf.data" -- sleep 10 2>/dev/null; else sleep 10; fi
for p in "${G[@]}" $NP; do B[$p]=$(t "$p"); done
wait $RP
FPS=$(jq '.window.fixes_per_s' "$OUT/r.json")
echo "fold=$FOLD gateways=$N partitions=$PARTS depots=${DEPOTS:-48}: ${FPS} fixes/s in the window; 10 s of CPU (100 ticks = 1 core-second):"
for i in $(seq 0 $((N-1))); do
    p=${G[$i]}; d=$(( B[$p] - A[$p] ))
    role=follower; [ "$i" -eq 0 ] && role="phones"
    held=$(grep -c "partition taken over" "$OUT/g$i.log" || true)
    echo "  g$i ($role, took $held partitions): $d ticks = $(echo "$d * 10000 / ($FPS * 10)" | bc -l | xargs printf '%.1f') µs per fleet fix"
done
echo "  nats-server: $(( B[$NP] - A[$NP] )) ticks"
jq -c '.window | {p50_us: .latency.p50_us, p99_us: .latency.p99_us}' "$OUT/r.json"
