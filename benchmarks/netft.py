"""Net F/T stream at its configured rate against the loopback emulator (issue #10 target: "F/T stream at its
configured rate with sequence gaps counted").

For each (rate, injected drop rate): the emulator (its own process) streams RDT records for `--seconds`; the
driver receives them in its thread. Recorded: records the emulator meant to send (its rdt_sequence), sent,
dropped by injection, fell behind (emulator descheduled), received by the driver, lost by its sequence-gap
count, and the received rate and inter-arrival p50/p99/max.

    nice -n 10 .venv/bin/python benchmarks/netft.py            # -> benchmarks/results/netft.json
    .venv/bin/python benchmarks/netft.py --seconds 1 --out /tmp/netft.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.machine import machine  # noqa: E402
from robolearn_hardware.force import Calibration, NetFTEmulator, NetFTSensor  # noqa: E402


def run(rate: float, drop: float, seconds: float) -> dict:
    with NetFTEmulator(rate=rate, drop=drop, seed=1, wrench=(0, 0, -9.81, 0, 0, 0)) as emu:
        sensor = NetFTSensor("127.0.0.1", port=emu.rdt_port, calibration=Calibration())
        with sensor:
            sensor.samples()  # from here on
            start = sensor.counters()
            t0 = time.monotonic()
            chunks = []
            while time.monotonic() - t0 < seconds:
                time.sleep(0.05)
                chunks.append(sensor.samples())
            end = sensor.counters()
        stats = emu.stats()
    t = np.concatenate([c["t"] for c in chunks])
    seq = np.concatenate([c["rdt_sequence"] for c in chunks])
    dt = np.diff(t) * 1e3
    received = end["received"] - start["received"]
    lost = end["lost"] - start["lost"]
    span_records = int(seq[-1] - seq[0] + 1)
    return {"rate_hz": rate, "drop_injected": drop, "seconds": round(float(t[-1] - t[0]), 3),
            "received": received, "lost_by_sequence_gap": lost, "gaps": end["gaps"] - start["gaps"],
            "late": end["late"] - start["late"],
            "records_in_span": span_records, "received_plus_lost_equals_span": received + lost == span_records,
            "received_rate_hz": round(len(t) / float(t[-1] - t[0]), 1),
            "sequence_rate_hz": round(span_records / float(t[-1] - t[0]), 1),
            "interarrival_ms": {"p50": round(float(np.percentile(dt, 50)), 3),
                                "p99": round(float(np.percentile(dt, 99)), 3), "max": round(float(dt.max()), 3)},
            "emulator": {k: stats[k] for k in ("sent", "dropped", "behind", "rdt_sequence")}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rates", default="1000,500")
    p.add_argument("--drops", default="0,0.01")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "netft.json"))
    a = p.parse_args()
    results = [run(float(r), float(d), a.seconds) for r in a.rates.split(",") for d in a.drops.split(",")]
    doc = {"benchmark": "netft", "machine": machine("numpy", niceness=os.nice(0), load=os.getloadavg()[0]),
           "results": results}
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    for r in results:
        print(f"{r['rate_hz']:>6.0f} Hz drop {r['drop_injected']:.2f}: received {r['received']} at "
              f"{r['received_rate_hz']} Hz, lost {r['lost_by_sequence_gap']} in {r['gaps']} gaps, emulator behind "
              f"{r['emulator']['behind']}, p99 {r['interarrival_ms']['p99']} ms")


if __name__ == "__main__":
    main()
