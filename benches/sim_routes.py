#!/usr/bin/env python3
"""Routes for the simulated drivers of `milepost replay --depots N` (benches/cluster_scale.sh
ROUTES=1): one route per driver `sim-00001`.., in its depot `sim-K` (K = FNV-1a of the driver
id modulo N, as replay draws it), with STOPS stops along the first points of the trace, planned
from now. Written as one JSON file per route under OUT/sim-K/, for `milepost route load`."""
import argparse, gzip, json, os, time


def fnv1a(s):
    h = 0x811C9DC5
    for b in s.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--drivers", type=int, required=True)
    a.add_argument("--depots", type=int, required=True)
    a.add_argument("--trace", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--stops", type=int, default=10)
    o = a.parse_args()
    pts = []
    with gzip.open(o.trace, "rt") as f:
        next(f)
        for line in f:
            lat, lon = line.split(",")[:2]
            pts.append((float(lat), float(lon)))
            if len(pts) >= 200 * (o.stops + 1):
                break
    now = int(time.time() * 1000)
    for n in range(1, o.drivers + 1):
        driver = "sim-%05d" % n
        depot = "sim-%d" % (fnv1a(driver) % o.depots) if o.depots > 1 else "sim"
        stops = [
            {
                "id": "S%d" % k,
                "lat": pts[200 * k][0],
                "lon": pts[200 * k][1],
                "parcels": [{"tracking": "T%05d-%d" % (n, k)}],
            }
            for k in range(1, o.stops + 1)
        ]
        route = {
            "id": "R-" + driver,
            "depot": depot,
            "driver": driver,
            "planned_start_ms": now,
            "start": {"lat": pts[0][0], "lon": pts[0][1]},
            "stops": stops,
        }
        d = os.path.join(o.out, depot)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, driver + ".json"), "w") as f:
            json.dump(route, f)


main()
