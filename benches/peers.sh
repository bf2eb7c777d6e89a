#!/usr/bin/env bash
# Milepost beside the peer a carrier would pick instead, on the same machine in the same run:
# for each fleet size, N phones at 1 fix/s against (a) `milepost serve` with its defaults,
# driven by `milepost replay` (benches/load.sh, one step), then (b) mosquitto from Debian
# behind TLS (QoS 1, persistence on), driven by the Rust MQTT load generator
# benches/mqtt_load.rs (rumqttc, a ~60-byte fix per message, PUBACK latency from the scheduled
# send time). Same pinning as load.sh: the server on GW_CORE, the load on CLIENT_CORE.
#
#   benches/peers.sh                                   # 5k, 10k, 20k phones, 40 s each
#   STEPS="2000" DURATION=20 benches/peers.sh          # a quick run
#
# Per server and step: acked/s, ack p50/p99, server CPU per message, server RSS per
# connection, and wire bytes per message. Wire bytes are measured the same way for both: the
# loopback interface's received bytes (every packet both ways, with its IP and TCP/UDP
# headers) over a stretch of the steady window, divided by the messages acked in it.
#
# The difference in work: Milepost fsyncs its log before every ack, indexes each position in
# an R-tree, runs stop progress and ETAs and feeds; mosquitto acknowledges a QoS 1 message
# with no subscriber once it has read it (its persistence is a periodic snapshot), and
# indexes nothing.
#
# Environment (all optional): STEPS (5000 10000 20000), DURATION (40), RAMP_PER_1K (3),
# GW_CORE (0), CLIENT_CORE (1), PORT (4499, Milepost's UDP), MQTT_PORT (8883), OUT
# (target/peers), NO_BUILD=1 (use the built binaries as they are).
#
# Needs mosquitto (apt-get install mosquitto; its service is not used), openssl and jq.
# mosquitto and the load generator hold one descriptor per TCP connection: a step past the
# descriptor limit (ulimit -Hn) is reported as not run rather than run short.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-"5000 10000 20000"}
DURATION=${DURATION:-40}
RAMP_PER_1K=${RAMP_PER_1K:-3}
GW_CORE=${GW_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
PORT=${PORT:-4499}
MQTT_PORT=${MQTT_PORT:-8883}
OUT=${OUT:-target/peers}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

for tool in mosquitto openssl jq; do
    if ! command -v "$tool" >/dev/null && [[ ! -x /usr/sbin/$tool ]]; then
        echo "peers.sh needs $tool (apt-get install $tool)" >&2
        exit 1
    fi
done
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

if [[ -z ${NO_BUILD:-} ]]; then
    cargo build --release --quiet --bin milepost
fi
LOADGEN=$(cargo bench --bench mqtt_load --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*mqtt_load-[0-9a-f]*\)).*/\1/p' | tail -n1)
if [[ ! -x $LOADGEN ]]; then
    echo "could not build benches/mqtt_load.rs" >&2
    exit 1
fi

# A CA and a server certificate for 127.0.0.1 (ECDSA P-256, as Milepost's dev certificates).
CERTS=$OUT/certs
if [[ ! -s $CERTS/server.pem ]]; then
    mkdir -p "$CERTS"
    openssl ecparam -name prime256v1 -genkey -noout -out "$CERTS/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$CERTS/ca.key" -subj "/CN=peers bench CA" -days 30 \
        -out "$CERTS/ca.pem" 2>/dev/null
    openssl ecparam -name prime256v1 -genkey -noout -out "$CERTS/server.key" 2>/dev/null
    openssl req -new -key "$CERTS/server.key" -subj "/CN=127.0.0.1" -out "$CERTS/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' >"$CERTS/san.ext"
    openssl x509 -req -in "$CERTS/server.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca.key" \
        -CAcreateserial -days 30 -extfile "$CERTS/san.ext" -out "$CERTS/server.pem" 2>/dev/null
fi

# Bytes received on the loopback interface (every packet both ways).
lo_bytes() { awk -F'[: ]+' '/^ *lo:/ { print $3 }' /proc/net/dev; }

# Samples the loopback bytes from `from` to `to` seconds after now, into file $3 (delta
# and seconds), in the background.
sample_lo() {
    ( sleep "$1"; a=$(lo_bytes); sleep "$2"; b=$(lo_bytes); echo "$(( b - a )) $2" >"$3" ) &
}

BROKER_PID=
BROKER_DIR=
cleanup() {
    if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    [[ -n $BROKER_DIR ]] && rm -rf "$BROKER_DIR"
    BROKER_PID=
    BROKER_DIR=
}
trap cleanup EXIT INT TERM

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)

ROWS=()
for N in $STEPS; do
    RAMP=$(( N * RAMP_PER_1K / 1000 ))
    (( RAMP < 2 )) && RAMP=2
    # The stretch of the window the wire is measured over: 5 s in, DURATION-10 s long.
    WIRE_AT=$(( RAMP + 5 ))
    WIRE_FOR=$(( DURATION > 15 ? DURATION - 10 : DURATION / 2 ))

    echo "== $N phones: Milepost" >&2
    sample_lo "$(( WIRE_AT + 2 ))" "$WIRE_FOR" "$OUT/wire-milepost-$N"
    if STEPS="$N" DURATION="$DURATION" RAMP_PER_1K="$RAMP_PER_1K" GW_CORE="$GW_CORE" \
        CLIENT_CORE="$CLIENT_CORE" PORT="$PORT" OUT="$OUT/milepost" NO_BUILD=1 \
        benches/load.sh >"$OUT/milepost-$N.txt" 2>"$OUT/milepost-$N.log"; then
        wait
        read -r wbytes wsecs <"$OUT/wire-milepost-$N"
        ROWS+=("$(jq -r --arg n "$N" --argjson wb "$wbytes" --argjson ws "$wsecs" '
            .window as $w | [ "milepost", $n, ($w.fixes_per_s | round),
              ($w.latency.p50_us / 1000 * 100 | round / 100), ($w.latency.p99_us / 1000 * 100 | round / 100),
              ($w.gateway.cpu_us_per_fix * 10 | round / 10),
              ($w.gateway.rss_per_driver_bytes / 1024 * 10 | round / 10),
              ($wb / ($w.fixes_per_s * $ws) | round) ] | @tsv' "$OUT/milepost/step-$N.json")")
    else
        wait
        echo "Milepost step $N failed: see $OUT/milepost-$N.log" >&2
        ROWS+=("milepost	$N	failed")
    fi

    echo "== $N phones: mosquitto" >&2
    if (( N + 64 > FD_LIMIT )); then
        echo "mosquitto step $N not run: $N TCP connections need more than the $FD_LIMIT descriptors a process may hold here" >&2
        ROWS+=("mosquitto	$N	not run (descriptor limit $FD_LIMIT)")
        continue
    fi
    BROKER_DIR=$(mktemp -d -t milepost-peers.XXXXXX)
    cat >"$BROKER_DIR/mosquitto.conf" <<EOF
listener $MQTT_PORT 127.0.0.1
cafile $CERTS/ca.pem
certfile $CERTS/server.pem
keyfile $CERTS/server.key
user $(id -un)
allow_anonymous true
max_connections -1
set_tcp_nodelay true
persistence true
persistence_location $BROKER_DIR/
log_dest stderr
log_type error
log_type warning
EOF
    taskset -c "$GW_CORE" "$MOSQUITTO" -c "$BROKER_DIR/mosquitto.conf" >"$OUT/mosquitto-$N.log" 2>&1 &
    BROKER_PID=$!
    sleep 1
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        echo "mosquitto did not start: see $OUT/mosquitto-$N.log" >&2
        ROWS+=("mosquitto	$N	failed")
        BROKER_PID=
        continue
    fi
    sample_lo "$(( RAMP + 3 + 5 ))" "$WIRE_FOR" "$OUT/wire-mqtt-$N"
    if timeout $(( RAMP + DURATION + 60 )) taskset -c "$CLIENT_CORE" "$LOADGEN" \
        --port "$MQTT_PORT" --ca "$CERTS/ca.pem" --clients "$N" --rate 1 \
        --duration "$DURATION" --ramp "$RAMP" --server-pid "$BROKER_PID" \
        >"$OUT/mqtt-$N.json" 2>"$OUT/mqtt-$N.log"; then
        # The wire sampler ended before the window did.
        sleep 1
        read -r wbytes wsecs <"$OUT/wire-mqtt-$N"
        ROWS+=("$(jq -r --arg n "$N" --argjson wb "$wbytes" --argjson ws "$wsecs" '
            [ "mosquitto", $n, (.acked_per_s | round),
              (.latency_us.p50 / 1000 * 100 | round / 100), (.latency_us.p99 / 1000 * 100 | round / 100),
              (.server_cpu_us_per_msg * 10 | round / 10),
              (.server_rss_per_conn_bytes / 1024 * 10 | round / 10),
              ($wb / (.acked_per_s * $ws) | round) ] | @tsv' "$OUT/mqtt-$N.json")")
    else
        echo "mosquitto step $N failed: see $OUT/mqtt-$N.log" >&2
        ROWS+=("mosquitto	$N	failed")
    fi
    cleanup
done

HEADER=$'server\tphones\tacked/s\tp50_ms\tp99_ms\tcpu_us/msg\tKiB/conn\twire_B/msg'
{
    echo "$HEADER"
    printf '%s\n' "${ROWS[@]}"
} | tee "$OUT/table.tsv" | column -t -s $'\t'

# Milepost / mosquitto for each step both ran.
echo
echo "ratios (Milepost / mosquitto):"
awk -F'\t' 'NR > 1 && NF == 8 { k = $2; if ($1 == "milepost") m[k] = $0; else q[k] = $0 }
  END { for (k in m) if (k in q) { split(m[k], a, "\t"); split(q[k], b, "\t");
    printf "  %s phones: p50 %.2fx, p99 %.2fx, cpu/msg %.2fx, memory/conn %.2fx, wire/msg %.2fx\n",
      k, a[4] / b[4], a[5] / b[5], a[6] / b[6], a[7] / b[7], a[8] / b[8] } }' "$OUT/table.tsv"
