#!/usr/bin/env bash
# How long a partition takeover takes when gateways fold only what they own (issue 25), with
# and without per-partition snapshots: g0 alone takes DRIVERS phones at 1 fix/s for DURATION
# (with ROUTES=1, every driver on a 10-stop route first), then g1 joins and takes half of the
# PARTITIONS partitions. Prints, per partition g1 took, the records it folded to catch up and
# how long from taking the lease to holding it, and the stream's size. Run it with SNAP=0
# (takeovers read each partition's subject from the start of the stream) and SNAP=10 (they
# start from the partition's newest image, at most 10 s old). MIDLOAD=1: g1 joins two thirds
# into the load instead of after it. Needs nats-server and jq;
# loopback only; stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -n ${NO_BUILD:-} ]] || cargo build --release --quiet --bin milepost
DRIVERS=${DRIVERS:-3000}; PARTS=${PARTITIONS:-12}; SNAP=${SNAP:-10}; DURATION=${DURATION:-120s}
OUT=${OUT:-target/takeover}; mkdir -p "$OUT"
. benches/cluster_lib.sh
start_nats
gateway() {
    local i=$1
    mkdir -p "$W/g$i"
    {
        echo 'admin_listen = "127.0.0.1:0"'
        if [ "$i" -gt 0 ]; then printf 'cert = "%s"\nkey = "%s"\n' "$W/g0/certs/server.pem" "$W/g0/certs/server.key"; fi
        printf '[cluster]\nfold = "owned"\npartitions = %s\nlease_ttl_s = 3\npartition_snapshot_s = %s\n' "$PARTS" "$SNAP"
    } > "$W/g$i/b.toml"
    MILEPOST_SECRET=$S RUST_LOG=warn,milepost::cli=info,milepost::cluster=info,milepost::server::applier=info \
        target/release/milepost serve --config "$W/g$i/b.toml" --listen 127.0.0.1:0 \
        --data-dir "$W/g$i" --cluster "nats://$URL" --node "g$i" > "$OUT/g$i.log" 2>&1 &
    PIDS+=($!)
}
gateway 0
sleep 5
PORT=$(grep -o "addr=127.0.0.1:[0-9]*" "$OUT/g0.log" | head -1 | cut -d: -f2)
[ -n "$PORT" ] || { echo "g0 did not start: $OUT/g0.log" >&2; exit 1; }
TRACE=../shared/data/geolife_sample/geolife_sample.txt.gz
[ -z "${ROUTES:-}" ] || load_routes "$PORT" "$TRACE"
target/release/milepost replay --trace $TRACE --format geolife --server "127.0.0.1:$PORT" \
    --ca "$W/g0/certs/ca.pem" --secret $S --drivers "$DRIVERS" --depots "${DEPOTS:-48}" \
    --rate 1 --duration "$DURATION" --ramp 5s --json "$OUT/r.json" > "$OUT/r.txt" 2>"$OUT/r.log" &
RP=$!; PIDS+=($RP)
if [ -n "${MIDLOAD:-}" ]; then
    # g1 joins two thirds into the load: what it catches up includes the fixes since the
    # partition's newest image, and g0 goes on publishing meanwhile.
    sleep $(( ${DURATION%s} * 2 / 3 ))
else
    # Images of the last records (one round), then g1 joins and takes its share.
    wait $RP
    sleep $(( SNAP > 0 ? SNAP + 2 : 1 ))
fi
STARTED=$(date +%s%N)
gateway 1
DEADLINE=$(( $(date +%s) + 300 ))
while [ "$(grep -c 'partition taken over' "$OUT/g1.log" || true)" -lt $(( PARTS / 2 )) ]; do
    [ "$(date +%s)" -lt $DEADLINE ] || { echo "g1 did not take its share: $OUT/g1.log" >&2; exit 1; }
    sleep 0.2
done
ALL_MS=$(( ($(date +%s%N) - STARTED) / 1000000 ))
wait $RP || true
echo "snap=${SNAP}s${MIDLOAD:+ (g1 joins under load)} drivers=$DRIVERS partitions=$PARTS duration=$DURATION routes=${ROUTES:-0}: $(jq '.acked' "$OUT/r.json") fixes acked"
echo "  per partition g1 took (records folded to catch up, ms from lease to held):"
grep 'partition taken over' "$OUT/g1.log" | sed 's/\x1b\[[0-9;]*m//g' \
    | grep -o 'partition=[0-9]* records=[0-9]* ms=[0-9]*' | sed 's/^/    /'
echo "  images installed: $(grep -c 'installed from its image' "$OUT/g1.log" || true)"
grep 'image fetched and decoded' "$OUT/g1.log" | sed 's/\x1b\[[0-9;]*m//g' \
    | grep -o 'partition=[0-9]* bytes=[0-9]* ms=[0-9]*' | sed 's/^/    image /' || true
echo "  from g1's start to its whole share held: ${ALL_MS} ms (process start and lease rounds included)"
