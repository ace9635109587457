#!/usr/bin/env python
"""Fuzz the servo protocol parsers with generated frames; result in benchmarks/results/fuzz_servo_codecs.json.

Cases per protocol (Dynamixel Protocol 2.0, Feetech STS): valid frames that must round-trip, streams of
frames glued with garbage and cut at random points, random bytes, truncated frames, and single-bit flips
(see robolearn_hardware.protocol.fuzz for what each must do). Also flips every bit of --exhaustive frames.
Pure Python, one core: run it with `nice -n 10` on a shared machine.

Usage: .venv/bin/python benchmarks/fuzz_servo_codecs.py [--cases 500000] [--exhaustive 2000] [--seed 2024]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

from robolearn_hardware.protocol.fuzz import FuzzStats, flip_outcome, fuzz, random_frame

OUT = Path(__file__).resolve().parent / "results" / "fuzz_servo_codecs.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=500_000, help="generated cases per protocol")
    ap.add_argument("--exhaustive", type=int, default=2_000, help="frames per protocol with every bit flipped")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    result = {"cases_per_protocol": args.cases, "seed": args.seed, "python": sys.version.split()[0],
              "machine": platform.machine(), "protocols": {}}
    ok = True
    for protocol in ("dynamixel", "feetech"):
        stats = fuzz(args.cases, protocol, seed=args.seed)
        rng, flips = random.Random(args.seed + 1), FuzzStats(protocol)
        t0 = time.perf_counter()
        for _ in range(args.exhaustive):
            frame, direction, expect = random_frame(rng, protocol)
            for bit in range(8 * len(frame)):
                flip_outcome(protocol, frame, direction, expect, bit, flips)
        entry = stats.to_json()
        entry["exhaustive_bitflips"] = {
            "frames": args.exhaustive, "flips": flips.bitflips, "rejected": flips.bitflips_rejected,
            "length_flips_accepted": flips.length_flips_accepted, "other_flips_accepted": flips.other_flips_accepted,
            "failures": flips.failures, "seconds": round(time.perf_counter() - t0, 2)}
        entry["seconds"] = round(entry["seconds"], 2)
        entry["cases_per_s"] = round(stats.cases / max(stats.seconds, 1e-9))
        result["protocols"][protocol] = entry
        ok &= not stats.failures and not flips.failures and stats.other_flips_accepted == 0
        print(json.dumps({protocol: {k: entry[k] for k in ("cases", "counts", "bitflips", "bitflips_rejected",
                                                           "length_flips_accepted", "other_flips_accepted",
                                                           "stream_frames_lost_to_noise_frames", "failures", "max_pending", "max_case_s", "seconds")}}))
    result["total_cases"] = 2 * args.cases
    result["passed"] = bool(ok)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
