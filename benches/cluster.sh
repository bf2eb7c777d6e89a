#!/usr/bin/env bash
# Cluster bench: 1, 2, then 3 release gateways over one local `nats-server -js`, the same
# total fleet of simulated drivers spread evenly over them (one `milepost replay` per gateway),
# 1 fix/s per driver over loopback QUIC. For each step it prints the acked fixes/s, the ack
# latency (p50/p99, from the scheduled send time, worst replay of the step), each gateway's CPU
# in the steady window per fix of its own phones (mean over gateways), and the CPU per fix of
# all gateways together and of nats-server over the whole run (ramp and handshakes included),
# read from /proc.
#
#   benches/cluster.sh                           # 1 2 3 gateways, 3000 drivers, 30 s
#   DRIVERS=6000 GATEWAYS="1 3" benches/cluster.sh
#   CLUSTER_TOML=$'partitions = 2\ngroup_linger_us = 3000' benches/cluster.sh   # other knobs
#
# This box has 2 cores: the gateways, nats-server and the load generators all share them, so
# adding gateways here adds no CPU, it only shows what a gateway costs per fix when it shares
# the fleet (each gateway folds the whole stream) and how JetStream's ack path shows in
# latency. Nothing is pinned. Needs nats-server on PATH (apt install nats-server) and jq.
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAYS=${GATEWAYS:-"1 2 3"}
DRIVERS=${DRIVERS:-3000}
DURATION=${DURATION:-30}
RATE=${RATE:-1}
TRACE=${TRACE:-../shared/data/geolife_sample/geolife_sample.txt.gz}
FORMAT=${FORMAT:-geolife}
PORT=${PORT:-4600}
OUT=${OUT:-target/cluster-bench}
SECRET=bench-secret-bench-secret-bench-secret
[[ -f $TRACE ]] || { echo "trace $TRACE not found (set TRACE=...)" >&2; exit 1; }
command -v nats-server >/dev/null || { echo "nats-server not found (apt install nats-server)" >&2; exit 1; }
[[ -n ${NO_BUILD:-} ]] || cargo build --release --quiet --bin milepost
BIN=target/release/milepost
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PIDS=()
WORK=
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
    [[ -n $WORK ]] && rm -rf "$WORK"
    WORK=
}
trap cleanup EXIT INT TERM

# CPU ticks (user + system) of a process.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)

ROWS=()
for G in $GATEWAYS; do
    WORK=$(mktemp -d -t milepost-cluster.XXXXXX)
    nats-server -a 127.0.0.1 -p -1 -js -sd "$WORK/nats" >"$OUT/nats-$G.log" 2>&1 &
    NATS_PID=$!
    PIDS+=("$NATS_PID")
    URL=
    for _ in $(seq 100); do
        URL=$(grep -o 'client connections on [0-9.:]*' "$OUT/nats-$G.log" | awk '{print $4}' || true)
        [[ -n $URL ]] && break
        sleep 0.1
    done
    [[ -n $URL ]] || { echo "nats-server did not start" >&2; exit 1; }
    GW_PIDS=()
    for ((k = 0; k < G; k++)); do
        D="$WORK/gw$k"
        mkdir -p "$D"
        {
            echo 'admin_listen = "127.0.0.1:0"'
            if ((k > 0)); then
                echo "cert = \"$WORK/gw0/certs/server.pem\""
                echo "key = \"$WORK/gw0/certs/server.key\""
            fi
            if [[ -n ${CLUSTER_TOML:-} ]]; then
                printf '[cluster]\n%s\n' "$CLUSTER_TOML"
            fi
        } >"$D/bench.toml"
        MILEPOST_SECRET=$SECRET RUST_LOG=warn "$BIN" serve --config "$D/bench.toml" \
            --listen "127.0.0.1:$((PORT + k))" --data-dir "$D" \
            --cluster "nats://$URL" --node "gw$k" >"$OUT/gateway-$G-$k.log" 2>&1 &
        GW_PIDS+=($!)
        PIDS+=($!)
        # The next gateway needs this one's certificate; every one needs to be up.
        for _ in $(seq 200); do
            [[ -s $WORK/gw0/certs/ca.pem ]] && ss -lun | grep -q ":$((PORT + k)) " && break
            sleep 0.1
        done
    done
    sleep 1
    PER=$((DRIVERS / G))
    RAMP=$(( PER / 1000 + 2 ))
    echo "== $G gateway(s), $DRIVERS drivers ($PER each), ${DURATION}s" >&2
    T0=0
    for p in "${GW_PIDS[@]}"; do T0=$((T0 + $(ticks "$p"))); done
    N0=$(ticks "$NATS_PID")
    START=$(date +%s.%N)
    REPLAYS=()
    for ((k = 0; k < G; k++)); do
        timeout $((RAMP + DURATION + 90)) "$BIN" replay --trace "$TRACE" --format "$FORMAT" \
            --server "127.0.0.1:$((PORT + k))" --ca "$WORK/gw0/certs/ca.pem" --secret "$SECRET" \
            --drivers "$PER" --first-driver $((k * PER)) --rate "$RATE" \
            --duration "${DURATION}s" --ramp "${RAMP}s" --json "$OUT/step-$G-$k.json" \
            --gateway-pid "${GW_PIDS[$k]}" \
            >"$OUT/replay-$G-$k.txt" 2>"$OUT/replay-$G-$k.log" &
        REPLAYS+=($!)
    done
    ok=1
    for r in "${REPLAYS[@]}"; do wait "$r" || ok=0; done
    END=$(date +%s.%N)
    T1=0
    for p in "${GW_PIDS[@]}"; do T1=$((T1 + $(ticks "$p"))); done
    N1=$(ticks "$NATS_PID")
    if ((ok == 0)); then
        echo "step $G failed: see $OUT/replay-$G-*.log" >&2
        ROWS+=("$G	failed")
        cleanup
        continue
    fi
    # Fixes acked over the whole run (ramp included, as the CPU is), and the windowed figures.
    SUM=$(jq -s '[.[].acked] | add' "$OUT"/step-"$G"-*.json)
    FPS=$(jq -s '[.[].window.fixes_per_s] | add | round' "$OUT"/step-"$G"-*.json)
    P50=$(jq -s '[.[].window.latency.p50_us] | max / 1000 | . * 100 | round / 100' "$OUT"/step-"$G"-*.json)
    P99=$(jq -s '[.[].window.latency.p99_us] | max / 1000 | . * 100 | round / 100' "$OUT"/step-"$G"-*.json)
    # Each gateway's CPU in the steady window per fix acked by its own phones.
    GW_WIN=$(jq -s '[.[].window.gateway.cpu_us_per_fix] | add / length | . * 10 | round / 10' "$OUT"/step-"$G"-*.json)
    GW_US=$(echo "($T1 - $T0) * 1000000 / $HZ / $SUM" | bc -l | xargs printf '%.1f')
    NATS_US=$(echo "($N1 - $N0) * 1000000 / $HZ / $SUM" | bc -l | xargs printf '%.1f')
    CORES=$(echo "($T1 - $T0 + $N1 - $N0) / $HZ / ($END - $START)" | bc -l | xargs printf '%.2f')
    ROWS+=("$G	$DRIVERS	$FPS	$P50	$P99	$GW_WIN	$GW_US	$NATS_US	$CORES")
    cleanup
    sleep 1
done

echo
{
    printf 'gateways\tdrivers\tfixes/s\tp50_ms\tp99_ms\tgw_us/own_fix(window)\tall_gw_us/fix(run)\tnats_us/fix(run)\tgw+nats_cores\n'
    printf '%s\n' "${ROWS[@]}"
} | column -t -s $'\t'
