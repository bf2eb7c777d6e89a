#!/usr/bin/env bash
# Mobile-network bench: benches/load.sh (release gateway on one core, `milepost replay` on the
# other, 1 fix/s per driver) under each network profile of the load generator's user-space
# relay (docs/NETWORK.md), and the same drivers straight over loopback ("none") to compare
# with. After load.sh's table for each profile it prints what the network did (realised loss,
# QUIC's round trip, NAT rebindings, dead zones, how lost connections ended) and the phones'
# radio budget per hour.
#
#   benches/network.sh                                   # none, lte-urban, 3g-poor, rural-edge x 2,000 and 10,000 drivers, 120 s
#   PROFILES="lte-urban" STEPS=2000 DURATION=30 benches/network.sh
#
# Environment: PROFILES (none lte-good lte-urban 3g-poor rural-edge), STEPS, DURATION, and
# anything benches/load.sh takes (REPLAY_ARGS is added to every run). Take the bench lock on a
# shared machine: flock /tmp/milepost-bench.lock benches/network.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILES=${PROFILES:-"none lte-urban 3g-poor rural-edge"}
export STEPS=${STEPS:-"2000 10000"}
export DURATION=${DURATION:-120}
[[ -n ${NO_BUILD:-} ]] || cargo build --release --quiet --bin milepost
export NO_BUILD=1
# Two relay sockets per driver.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for p in $PROFILES; do
    echo "### network $p"
    args=${REPLAY_ARGS:-}
    [[ $p == none ]] || args="--network $p $args"
    # Dead zones of up to 3 min stretch the drain.
    OUT=target/network/$p REPLAY_ARGS=$args EXTRA_WAIT=300 benches/load.sh
    for n in $STEPS; do
        f=target/network/$p/step-$n.json
        [[ -f $f ]] || continue
        jq -r --arg n "$n" '
          def pct: . * 10000 | round / 100;
          def ms: . / 1000 | (. * 10 | round) / 10;
          "\($n) drivers: conns lost \(.conn_lost) (reset \(.conn_reset), timed out \(.conn_timed_out)), reconnects \(.reconnects), duplicates \(.duplicates), unsettled \(.unsettled); backlog age p99 \(.backlog_age.p99_us | ms) ms",
          (if .net then
            "  network: loss up \(.net.up.loss | pct) % down \(.net.down.loss | pct) %, queue drops \(.net.up.queue_drops)/\(.net.down.queue_drops), rtt p50 \(.net.rtt_p50_us | ms) p99 \(.net.rtt_p99_us | ms) ms, rebinds \(.net.rebinds) + \(.net.nat_expiries) expired, dead zones \(.net.dead_zones)",
            "  radio per phone-hour: \((.net.bytes_up_per_h + .net.bytes_down_per_h) / 1e6 * 100 | round / 100) MB (\(.net.bytes_up_per_h / 1e3 | round) KB up), \(.net.packets_up_per_h | round) packets up, \(.net.packets_down_per_h | round) down, \(.net.wakeups_per_h | round) wake-ups"
          else empty end)' "$f"
    done
done
