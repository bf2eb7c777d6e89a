#!/usr/bin/env bash
# Runs every Milepost fuzz target for a bounded time each (cargo-fuzz / libFuzzer).
#
# Usage:  fuzz/run.sh [TARGET...]        (default: every target, see `cargo fuzz list`)
# Env:    FUZZ_SECONDS   seconds per target (default 60)
#         FUZZ_JOBS      libFuzzer -fork workers per target (default 1 = no fork)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The toolchain is stable: RUSTC_BOOTSTRAP=1 lets
# it accept the nightly-only flags cargo-fuzz passes (-Zsanitizer=address ...).
#
# Corpora (fuzz/corpus/<target>/, git-ignored) are seeded at every run from the fenced
# ```hex name=... type=T``` blocks of proto/PROTOCOL.md, routed to the targets by their type,
# and for route_json from examples/*.json. Crashes land in fuzz/artifacts/<target>/; a
# summary line per target is printed at the end. Exit status: 1 if any target crashed or failed
# to build.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$here"
export RUSTC_BOOTSTRAP=1
secs="${FUZZ_SECONDS:-60}"
jobs="${FUZZ_JOBS:-1}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frame client_msg server_msg datagram roundtrip route_json)
fi

# --- seed corpora from the spec's test vectors -------------------------------------------------
python3 - "$root/proto/PROTOCOL.md" "$here/corpus" "$root/examples" <<'PY'
import glob, os, re, sys
md, corpus, examples = sys.argv[1:4]
text = open(md, encoding="utf-8").read()
# Selector byte of the roundtrip target (fuzz_targets/roundtrip.rs) per type.
rt = {"ClientMsg": 0, "ServerMsg": 1, "ClientDatagram": 2, "Fix": 3, "Route": 4,
      "Update": 5, "Outcome": 6}
direct = {"ClientMsg": "client_msg", "ServerMsg": "server_msg", "ClientDatagram": "datagram"}

def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "spec-" + name), "wb") as f:
        f.write(data)

n = 0
for m in re.finditer(r"```hex name=(\S+) type=(\S+)\n(.*?)```", text, re.S):
    name, ty, data = m.group(1), m.group(2), bytes.fromhex(m.group(3))
    n += 1
    if ty.startswith("frame("):
        put("frame", name, b"\xff\x03" + data)           # limit 1023, then the frame
        inner = ty[len("frame("):-1]
        payload = data[4:]
        if inner in direct:
            put(direct[inner], name, payload)
        continue
    if ty in direct:
        put(direct[ty], name, data)
        put("frame", name, b"\xff\x03" + len(data).to_bytes(4, "little") + data)
    if ty in rt:
        put("roundtrip", name, bytes([rt[ty]]) + data)
for path in glob.glob(os.path.join(examples, "*.json")):
    put("route_json", os.path.basename(path), open(path, "rb").read())
print(f"seeded corpora from {n} hex vectors of PROTOCOL.md", file=sys.stderr)
PY

# --- run ----------------------------------------------------------------------------------------
status=0
summary=()
mkdir -p "$here/artifacts/logs"
for t in "${targets[@]}"; do
    feat=()
    [ "$t" = route_json ] && feat=(--features route)
    mkdir -p "$here/corpus/$t"
    log="$here/artifacts/logs/$t.log"
    echo "== fuzz $t for ${secs}s (log: $log)"
    extra=()
    [ "$jobs" -gt 1 ] && extra=(-fork="$jobs")
    cargo fuzz run -O "${feat[@]}" "$t" "$here/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
        "${extra[@]}" >"$log" 2>&1
    rc=$?
    done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1)"
    runs="$(grep -E '^stat::number_of_executed_units' "$log" | tail -n1 | awk '{print $2}')"
    if [ $rc -ne 0 ]; then
        status=1
        summary+=("$t: FAILED (rc $rc) - see $log; artifacts in fuzz/artifacts/$t/")
        tail -n 30 "$log"
    else
        summary+=("$t: ok, ${runs:-?} execs in ${secs}s; ${done_line:-no DONE line}")
    fi
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
