#!/usr/bin/env bash
# The phone's battery and data budget: simulated phones on a network profile (default
# lte-urban) through the load generator's relay, which counts what each phone's radio sent and
# received and its wake-ups (activity after more than 10 s of quiet), per phone and hour. One
# run per phone setting:
#   live     1 fix/s, each fix a live datagram (the default phone), keep-alive 15 s
#   5s/30s   a fix every 5 s, uploaded every 30 s as one batch, keep-alive 15 s, idle 30 s
#   tuned    the same with keep-alive 25 s and idle timeout 60 s
#   no-ka    the same with no keep-alive and idle timeout 60 s
#
#   benches/budget.sh                      # 200 phones, 150 s each, lte-urban
#   DRIVERS=100 DURATION=60 NETWORK=3g-poor benches/budget.sh
#   ONLY="5s/30s" GW_EXTRA='[limits]\nphone_ack_delay_ms = 0' benches/budget.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DRIVERS=${DRIVERS:-200}
DURATION=${DURATION:-150}
NETWORK=${NETWORK:-lte-urban}
TRACE=${TRACE:-../shared/data/geolife_sample/geolife_sample.txt.gz}
PORT=${PORT:-4497}
OUT=${OUT:-target/budget}
[[ -n ${NO_BUILD:-} ]] || cargo build --release --quiet --bin milepost
BIN=target/release/milepost
mkdir -p "$OUT"
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
GW=
DATA=
cleanup() {
    if [[ -n $GW ]]; then kill -TERM "$GW" 2>/dev/null || true; wait "$GW" 2>/dev/null || true; fi
    if [[ -n $DATA ]]; then rm -rf "$DATA"; fi
    GW=
    DATA=
}
trap cleanup EXIT INT TERM
run() {
    local name=$1
    shift
    # ONLY: run just the settings named (space separated), e.g. ONLY="live 5s/30s".
    if [[ -n ${ONLY:-} && " $ONLY " != *" $name "* ]]; then return; fi
    DATA=$(mktemp -d -t milepost-budget.XXXXXX)
    echo 'admin_listen = "127.0.0.1:0"' >"$DATA/bench.toml"
    # GW_EXTRA: more config lines for the gateway (another knob, for before/after runs).
    if [[ -n ${GW_EXTRA:-} ]]; then printf '%b\n' "$GW_EXTRA" >>"$DATA/bench.toml"; fi
    RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --config "$DATA/bench.toml" >"$OUT/gateway-${name//\//-}.log" 2>&1 &
    GW=$!
    for _ in $(seq 100); do [[ -s $DATA/secret.key && -s $DATA/certs/ca.pem ]] && break; sleep 0.1; done
    sleep 0.5
    timeout $(( DURATION + 120 )) "$BIN" replay --trace "$TRACE" --format geolife --server "127.0.0.1:$PORT" \
        --data-dir "$DATA" --drivers "$DRIVERS" --duration "${DURATION}s" --ramp 2s --network "$NETWORK" \
        --json "$OUT/${name//\//-}.json" --quiet "$@" >"$OUT/${name//\//-}.txt" 2>"$OUT/${name//\//-}.log"
    jq -r --arg n "$name" '
      "\($n)\t\((.net.bytes_up_per_h + .net.bytes_down_per_h) / 1e6 * 100 | round / 100)\t\(.net.bytes_up_per_h / 1e3 | round)\t\(.net.bytes_down_per_h / 1e3 | round)\t\(.net.packets_up_per_h | round)\t\(.net.packets_down_per_h | round)\t\(.net.wakeups_per_h | round)\t\(.latency.p50_us / 1000 | round)\t\(.latency.p99_us / 1000 | round)\t\(.unsettled)\t\(.conn_lost)"' "$OUT/${name//\//-}.json"
    cleanup
}
echo "budget: $DRIVERS phones on $NETWORK, ${DURATION}s per setting" >&2
{
    printf 'setting\tMB/h\tKB_up/h\tKB_down/h\tpkts_up/h\tpkts_down/h\twakeups/h\tack_p50_ms\tack_p99_ms\tunsettled\tconns_lost\n'
    run live --rate 1
    run 5s/30s --rate 0.2 --batch 6 --no-live
    run tuned --rate 0.2 --batch 6 --no-live --keep-alive 25s --idle-timeout 60s
    run no-ka --rate 0.2 --batch 6 --no-live --keep-alive off --idle-timeout 60s
} | column -t -s $'\t'
