#!/usr/bin/env bash
# Reconnect storm: N simulated drivers stream fixes at 1 Hz; the gateway is restarted (SIGTERM,
# or SIGKILL with SIGNAL=KILL: a crash, which closes no connection; then started again on the
# same port and data directory) in the middle of the run. Prints how
# long after the restarted gateway was ready (its "listening" log line) all drivers were
# connected again, and connected and acked again (each driver's new session had an ack), from
# the load generator's own timestamps; the CPU both processes spent in that time; how many TLS
# sessions were resumed and how many handshakes got a stateless retry (the new gateway's
# /metrics); and the ack latency over the run. Loopback only; stops by itself. The gateway is
# pinned to core 0 and the load generator to core 1 (set GW_CPU / LG_CPU to change that).
#
#   DRIVERS=10000 benches/storm.sh
#   GW_ARGS="--config FILE" DRIVERS=10000 benches/storm.sh   # the gateway with other knobs
#
# Take the shared bench lock on a shared machine: flock /tmp/milepost-bench.lock benches/storm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DRIVERS=${DRIVERS:-10000}
PORT=${PORT:-4498}
OUT=${OUT:-target/storm}
GW_CPU=${GW_CPU:-0}
LG_CPU=${LG_CPU:-1}
TRACE=${TRACE:-../shared/data/geolife_sample/geolife_sample.txt.gz}
[[ -n ${NO_BUILD:-} ]] || cargo build --release --quiet --bin milepost
BIN=target/release/milepost
mkdir -p "$OUT"
DATA=$(mktemp -d)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export MILEPOST_ADMIN_LISTEN=127.0.0.1:0
start_gw() {
    # shellcheck disable=SC2086 # GW_ARGS is a list of flags
    taskset -c "$GW_CPU" "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" ${GW_ARGS:-} >>"$OUT/gateway.log" 2>&1 &
    GW=$!
    for _ in $(seq 1 300); do grep -q "addr=" "$OUT/gateway.log" 2>/dev/null && [[ $(grep -c "addr=" "$OUT/gateway.log") -ge $1 ]] && return; sleep 0.05; done
    echo "gateway did not start" >&2; exit 1
}
# CPU seconds (user + system) of a process so far.
# "gone" once the process has exited (the replay ends by itself when drivers never all came back).
cpu_s() { awk '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / 100 }' "/proc/$1/stat" 2>/dev/null || echo gone; }
cpu_diff() { if [[ $1 == gone || $2 == gone ]]; then echo "n/a (exited)"; else echo "$(echo "$2 - $1" | bc) s"; fi; }
# UDP datagrams the kernel dropped for want of socket buffer space, machine-wide.
udp_drops() { awk '/^Udp:/ { if (h) { print $6; exit } h = 1 }' /proc/net/snmp; }
: >"$OUT/gateway.log"
start_gw 1
RAMP=$(( DRIVERS / 1000 * 2 + 1 ))
taskset -c "$LG_CPU" "$BIN" replay --trace "$TRACE" --format geolife --server "127.0.0.1:$PORT" --data-dir "$DATA" \
    --drivers "$DRIVERS" --rate 1 --duration 60s --ramp "${RAMP}s" --reconnect-for 60s >"$OUT/replay.txt" 2>"$OUT/replay.log" &
RP=$!
sleep $(( RAMP + 20 ))
kill -"${SIGNAL:-TERM}" "$GW"; wait "$GW" || true
start_gw 2
# Ready: the restarted gateway's "listening" line (logged after recovery, once it serves).
READY_MS=$(grep "addr=" "$OUT/gateway.log" | tail -1 | cut -d' ' -f1 | xargs -I{} date -d {} +%s%3N)
ADMIN=$(grep -o "admin=[0-9.:]*" "$OUT/gateway.log" | tail -1 | cut -d= -f2)
GW_CPU0=$(cpu_s "$GW"); LG_CPU0=$(cpu_s "$RP"); DROPS0=$(udp_drops)
echo "gateway restarted; ready at unix_ms=$READY_MS"
# The load generator prints "all drivers connected and acked at unix_ms=..." the moment the last
# driver's new session is acked.
BACK=
for _ in $(seq 1 600); do
    if grep -q "connected and acked at" <(tr '\r' '\n' <"$OUT/replay.log" | sed -n "/unix_ms=/p" | awk -F= -v r="$READY_MS" '$NF >= r'); then
        BACK=1
        break
    fi
    sleep 0.1
done
GW_CPU1=$(cpu_s "$GW"); LG_CPU1=$(cpu_s "$RP"); DROPS1=$(udp_drops)
METRICS=$(curl -s "http://$ADMIN/metrics" || true)
wait "$RP" || true
kill -TERM "$GW" 2>/dev/null || true; wait "$GW" 2>/dev/null || true
rm -rf "$DATA"
since() { tr '\r' '\n' <"$OUT/replay.log" | grep "all drivers $1 at" | awk -F= -v r="$READY_MS" '$NF >= r { printf "%.2f\n", ($NF - r) / 1000; exit }'; }
if [[ -n $BACK ]]; then
    printf "all %d drivers connected again %s s, connected and acked again %s s after the gateway was ready\n" \
        "$DRIVERS" "$(since connected)" "$(since "connected and acked")"
else
    echo "not every driver came back within 60 s"
fi
metric() { awk -v m="$1" '$1 == m { print $2 }' <<<"$METRICS"; }
echo "until then: gateway CPU $(cpu_diff "$GW_CPU0" "$GW_CPU1"), load generator CPU $(cpu_diff "$LG_CPU0" "$LG_CPU1");" \
    "new gateway: connections $(metric milepost_connections_total), TLS resumptions $(metric milepost_tls_resumptions_total)," \
    "stateless retries $(metric milepost_retries_total); UDP receive-buffer drops $(( DROPS1 - DROPS0 ))"
grep -E "reconnects|TLS|ack latency \(all\)|fixes |handshake" "$OUT/replay.txt" || true
