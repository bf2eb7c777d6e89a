#!/usr/bin/env bash
# End-to-end load bench: a release gateway on one core, `milepost replay` on the other, stepping
# through fleet sizes at 1 fix/s per driver over loopback QUIC. For each step it prints the
# sustained fixes/s, the ack latency (from the scheduled send time: no coordinated omission),
# the gateway's CPU per fix and memory per connected driver (from /proc), and the bytes on the
# wire per fix (quinn's per-connection UDP counters, plus IP/UDP headers).
#
#   benches/load.sh                                  # 5k, 10k, 20k, 30k drivers, 40 s each
#   STEPS="1000 2000" DURATION=10 benches/load.sh    # a quick run
#
# Environment (all optional):
#   STEPS        fleet sizes, space separated                 (5000 10000 20000 30000)
#   DURATION     seconds every driver sends after the ramp     (40)
#   RATE         fixes per second per driver                   (1)
#   RAMP_PER_1K  ramp seconds per 1000 drivers (handshakes)    (3)
#                At 1 (1,000 full TLS handshakes/s) both processes near 20,000 drivers
#                run at 80-90% of their core and the run tips into a retransmission
#                collapse; at 3 it measures the steady state (see docs/BENCHMARKS.md).
#   TRACE        recorded trace                                (../shared/data/geolife_sample/geolife_sample.txt.gz)
#   FORMAT       its format                                    (geolife)
#   GW_CORE, CLIENT_CORE   cores for the gateway and the load  (0, 1)
#   PORT         gateway UDP port on 127.0.0.1                 (4499)
#   OUT          where logs and per-step JSON reports go       (target/load)
#   REPLAY_ARGS  extra `milepost replay` flags, e.g. "--no-live --batch 5"
#   GW_CONFIG    a gateway config file (milepost config-example) to try other knobs
#   EXTRA_WAIT   seconds the step may run past ramp + duration + 90 (long dead zones) (0)
#   NO_BUILD=1   use target/release/milepost as it is
#   GW_BIN       another gateway binary (an older build, for before/after), driven by this
#                build's replay
#   SOCKBUF      raise net.core.rmem_max/wmem_max to this many bytes if lower (33554432; 0: no)
#
# Bounded: every step stops by itself (the replay has a fixed duration and a drain; a timeout
# backs it up), the gateway is stopped after each step and its data directory removed.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-"5000 10000 20000 30000"}
DURATION=${DURATION:-40}
RATE=${RATE:-1}
RAMP_PER_1K=${RAMP_PER_1K:-3}
TRACE=${TRACE:-../shared/data/geolife_sample/geolife_sample.txt.gz}
FORMAT=${FORMAT:-geolife}
GW_CORE=${GW_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
PORT=${PORT:-4499}
OUT=${OUT:-target/load}
REPLAY_ARGS=${REPLAY_ARGS:-}
GW_CONFIG=${GW_CONFIG:-}

if [[ ! -f $TRACE ]]; then
    echo "trace $TRACE not found (set TRACE=...)" >&2
    exit 1
fi
if [[ -z ${NO_BUILD:-} ]]; then
    cargo build --release --quiet --bin milepost
fi
BIN=target/release/milepost
GW_BIN=${GW_BIN:-$BIN}
mkdir -p "$OUT"
# The load generator needs few descriptors (drivers share sockets), but with --network every
# driver has a relay of two sockets: raise the limit (as root past the hard limit).
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Socket buffers: the gateway and the load generator ask for 32 MiB per UDP socket, which the
# kernel caps at net.core.rmem_max/wmem_max. Raise the caps if we may (root, or a network
# namespace of our own); they stay raised (they only allow larger buffers, they allocate
# nothing). SOCKBUF=0 leaves them alone.
SOCKBUF=${SOCKBUF:-33554432}
if (( SOCKBUF > 0 )); then
    for knob in net.core.rmem_max net.core.wmem_max; do
        cur=$(sysctl -n "$knob" 2>/dev/null || echo 0)
        if (( cur < SOCKBUF )); then
            if sysctl -qw "$knob=$SOCKBUF" 2>/dev/null; then
                echo "raised $knob from $cur to $SOCKBUF" >&2
            else
                echo "could not raise $knob ($cur): socket buffers stay capped; expect UDP drops under bursts" >&2
            fi
        fi
    done
fi

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

# Reads the per-step JSON report into one table row.
row() {
    jq -r --arg n "$1" '
      def ms: . / 1000 | (. * 100 | round) / 100;
      def r1: (. * 10 | round) / 10;
      [ $n, .window.connected, (.window.fixes_per_s | round),
        (.window.latency.p50_us | ms), (.window.latency.p99_us | ms), (.window.latency.p999_us | ms),
        (if .window.gateway then (.window.gateway.cpu_us_per_fix | r1) else "-" end),
        (if .window.gateway then ((.window.gateway.cores * 100 | round) / 100) else "-" end),
        (if .window.gateway then (.window.gateway.rss_per_driver_bytes / 1024 | r1) else "-" end),
        (.window.wire_bytes_per_fix | round), (.window.client_cpu_us_per_fix | r1),
        ((.window.other_cores * 100 | round) / 100),
        "\(.conn_lost)/\(.drivers_failed)/\(.unsettled)",
        "\(.udp_drops.gateway // "?")/\(.udp_drops.client // "?")" ] | @tsv' "$2"
}

# UDP datagrams the kernel dropped for want of socket buffer space, machine-wide.
udp_drops() {
    awk '/^Udp:/ { if (h) { print $6; exit } h = 1 }' /proc/net/snmp
}

HEADER=$'drivers\tconnected\tfixes/s\tp50_ms\tp99_ms\tp99.9_ms\tgw_us/fix\tgw_cores\tgw_KiB/drv\twire_B/fix\tclient_us/fix\tother_cores\tlost/failed/unsettled\tudp_drops_gw/client\tudp_drops_all'
ROWS=()
echo "load bench: steps [$STEPS], ${DURATION}s at ${RATE} fix/s per driver, trace $TRACE" >&2
for N in $STEPS; do
    DATA=$(mktemp -d -t milepost-load.XXXXXX)
    GW_ARGS=(serve --listen "127.0.0.1:$PORT" --data-dir "$DATA")
    if [[ -n $GW_CONFIG ]]; then
        GW_ARGS+=(--config "$GW_CONFIG")
    elif "$BIN" config-example | grep -q '^admin_listen'; then
        # Keep the admin listener off its fixed port: another gateway may hold it.
        echo 'admin_listen = "127.0.0.1:0"' >"$DATA/bench.toml"
        GW_ARGS+=(--config "$DATA/bench.toml")
    fi
    RUST_LOG=${GW_LOG:-warn} taskset -c "$GW_CORE" "$GW_BIN" "${GW_ARGS[@]}" >"$OUT/gateway-$N.log" 2>&1 &
    GW_PID=$!
    for _ in $(seq 100); do
        [[ -s $DATA/secret.key && -s $DATA/certs/ca.pem ]] && break
        sleep 0.1
    done
    sleep 0.5
    RAMP=$(( N * RAMP_PER_1K / 1000 ))
    (( RAMP < 2 )) && RAMP=2
    echo "== $N drivers (ramp ${RAMP}s, run ${DURATION}s)" >&2
    DROPS0=$(udp_drops)
    # shellcheck disable=SC2086 # REPLAY_ARGS is a list of flags
    if timeout $(( RAMP + DURATION + 90 + ${EXTRA_WAIT:-0} )) taskset -c "$CLIENT_CORE" "$BIN" replay \
        --trace "$TRACE" --format "$FORMAT" --server "127.0.0.1:$PORT" --data-dir "$DATA" \
        --drivers "$N" --rate "$RATE" --duration "${DURATION}s" --ramp "${RAMP}s" \
        --gateway-pid "$GW_PID" --json "$OUT/step-$N.json" $REPLAY_ARGS \
        >"$OUT/replay-$N.txt" 2>"$OUT/replay-$N.log"; then
        cat "$OUT/replay-$N.txt" >&2
        ROWS+=("$(row "$N" "$OUT/step-$N.json")	$(( $(udp_drops) - DROPS0 ))")
    else
        echo "step $N failed: see $OUT/replay-$N.log" >&2
        tail -3 "$OUT/replay-$N.log" >&2 || true
        ROWS+=("$N	failed")
    fi
    cleanup
    sleep 1
done

echo
{
    echo "$HEADER"
    printf '%s\n' "${ROWS[@]}"
} | column -t -s $'\t'
