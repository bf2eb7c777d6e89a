#!/usr/bin/env bash
# The cost of following the stream: gateway g0 takes every phone (DRIVERS at 1 fix/s), gateway
# g1 takes none and only folds the stream. Prints both gateways' and nats-server's CPU over a
# 10 s window in the steady state (100 ticks = 1 core-second), the replay's window figures, and
# how many records each publisher put in how many JetStream messages. PERF=1 records a
# `perf record -g` profile of the follower into $OUT/perf.data. EXTRA adds config lines, e.g.
# EXTRA=$'[cluster]\npartitions = 2'. Needs nats-server and jq; loopback only.
set -e
cd "$(dirname "$0")/.."
[[ -n ${NO_BUILD:-} ]] || cargo build --release --quiet --bin milepost
W=$(mktemp -d); OUT=${OUT:-target/cluster-follow}; mkdir -p $OUT
nats-server -a 127.0.0.1 -p -1 -js -sd $W/nats > $OUT/nats.log 2>&1 & NP=$!
sleep 1; URL=$(grep -o 'client connections on [0-9.:]*' $OUT/nats.log | awk '{print $4}')
S=bench-secret-bench-secret-bench-secret
mkdir -p $W/g0 $W/g1
echo 'admin_listen = "127.0.0.1:0"' > $W/g0/b.toml
printf "${EXTRA:-}\n" >> $W/g0/b.toml
MILEPOST_SECRET=$S RUST_LOG=warn,milepost::cluster=info target/release/milepost serve --config $W/g0/b.toml --listen 127.0.0.1:4700 --data-dir $W/g0 --cluster nats://$URL --node g0 > $OUT/g0.log 2>&1 & G0=$!
sleep 1.5
printf 'admin_listen = "127.0.0.1:0"\ncert = "%s"\nkey = "%s"\n' $W/g0/certs/server.pem $W/g0/certs/server.key > $W/g1/b.toml
printf "${EXTRA:-}\n" >> $W/g1/b.toml
MILEPOST_SECRET=$S RUST_LOG=warn,milepost::cluster=info target/release/milepost serve --config $W/g1/b.toml --listen 127.0.0.1:4701 --data-dir $W/g1 --cluster nats://$URL --node g1 > $OUT/g1.log 2>&1 & G1=$!
sleep 1.5
t() { awk '{ print $14 + $15 }' /proc/$1/stat; }
target/release/milepost replay --trace ../shared/data/geolife_sample/geolife_sample.txt.gz --format geolife --server 127.0.0.1:4700 --ca $W/g0/certs/ca.pem --secret $S --drivers ${DRIVERS:-3000} --rate 1 --duration 25s --ramp 5s --gateway-pid $G0 --json $OUT/r.json > $OUT/r.txt 2>$OUT/r.log &
RP=$!
sleep 12
a0=$(t $G0); a1=$(t $G1); an=$(t $NP)
if [ -n "${PERF:-}" ]; then perf record -e cpu-clock -g -p $G1 -o $OUT/perf.data -- sleep 10 2>/dev/null; else sleep 10; fi
b0=$(t $G0); b1=$(t $G1); bn=$(t $NP)
wait $RP
echo "10 s window at ~${DRIVERS:-3000} fixes/s: g0 (all phones) $(( (b0-a0) )) ticks, g1 (follower) $(( (b1-a1) )) ticks, nats $(( (bn-an) )) ticks (100 ticks = 1 core-second)"
jq '.window | {fixes_per_s, p50: .latency.p50_us, p99: .latency.p99_us, gw_us: .gateway.cpu_us_per_fix}' $OUT/r.json
kill $G0 $G1; wait $G0 $G1 2>/dev/null || true
grep -h "publisher stopped" $OUT/g0.log $OUT/g1.log || true
kill $NP; rm -rf $W
