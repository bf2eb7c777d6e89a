# Shared by the cluster benches (sourced, not run): a scratch directory W, the fleet's secret
# S, PIDS (everything started, stopped by PID on exit, then W removed), a nats-server on
# loopback and the simulated drivers' routes. The caller sets OUT (logs), DRIVERS and DEPOTS.

W=$(mktemp -d)
S=bench-secret-bench-secret-bench-secret
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

# Starts `nats-server -js` on a free loopback port: sets NP (its PID) and URL (host:port).
start_nats() {
    nats-server -a 127.0.0.1 -p -1 -js -sd "$W/nats" > "$OUT/nats.log" 2>&1 & NP=$!; PIDS+=($NP)
    for _ in $(seq 50); do grep -q 'client connections on' "$OUT/nats.log" && break; sleep 0.1; done
    URL=$(grep -o 'client connections on [0-9.:]*' "$OUT/nats.log" | awk '{print $4}')
}

# Gives every simulated driver a 10-stop route along the trace $2 (benches/sim_routes.py),
# assigned through the gateway at 127.0.0.1:$1 (whose CA is $W/g0/certs/ca.pem): the fold then
# does what it does on a delivery day, route progress and the ETAs of every remaining stop on
# every fix.
load_routes() {
    python3 benches/sim_routes.py --drivers "$DRIVERS" --depots "${DEPOTS:-48}" --trace "$2" --out "$W/routes"
    for d in "$W"/routes/*; do
        T=$(target/release/milepost token --secret $S --role dispatcher --subject "$(basename "$d")" --ttl 1h)
        # A partition changing hands (leases still settling) answers "retry": the load is
        # repeated (an assignment of the same route replaces it).
        for try in 1 2 3 4 5; do
            target/release/milepost route load --server "127.0.0.1:$1" --ca "$W/g0/certs/ca.pem" \
                --token "$T" "$d"/*.json > /dev/null && break
            [ "$try" -lt 5 ] || return 1
            sleep 2
        done
    done
    echo "routes assigned: $(ls "$W"/routes/*/*.json | wc -l)"
}
