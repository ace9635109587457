"""`make demo` end to end: wall time (collect / train / eval) and success, per training seed, plus the same
checkpoints evaluated with other execution horizons (`model.n_action_steps`), on the demo's 50 eval seeds.

Targets (issue #12, part 4): `make demo` within 15 minutes on an idle 2-core machine with >= 0.80 success.
Each seed runs `robolearn demo --json` exactly as `make demo` does (its own collect, train and eval, timed by the
demo itself), then `robolearn eval model.n_action_steps=K` on that checkpoint for every other K. Run it alone: the
times are the point.

    .venv/bin/python benchmarks/demo.py                           # seeds 0 and 1 -> benchmarks/results/demo.json
    .venv/bin/python benchmarks/demo.py --seeds 0 --horizons 4 --work /tmp/demo-bench --out /tmp/demo.json
    .venv/bin/python benchmarks/demo.py --set train.steps=2 --set eval.episodes=1 ...   # a smoke run (any override)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.machine import machine, steal_s  # noqa: E402

CLI = [sys.executable, "-c", "from robolearn.cli.main import main; main()"]
os.environ.setdefault("MUJOCO_GL", "egl")  # as `make demo` renders (and recorded with the machine)


def last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def cli(*args: str) -> dict:
    done = subprocess.run([*CLI, *args, "--json"], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"robolearn {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return last_json(done.stdout)


def one_seed(seed: int, work: Path, horizons: list[int], sets: list[str]) -> dict:
    out = work / f"seed{seed}"
    steal0, t0 = steal_s(), time.monotonic()
    demo = cli("demo", "--out", str(out), f"train.seed={seed}", *sets)
    wall = time.monotonic() - t0
    default = yaml.safe_load((ROOT / "configs/demo/default.yaml").read_text())["model"]["n_action_steps"]
    row = {"train_seed": seed, "wall_s": round(wall, 1), "steal_s": round(steal_s() - steal0, 2),
           "timings": demo["timings"], "success_rate": demo["success_rate"], "ci95": demo["ci95"],
           "expert_success_rate": demo.get("expert_success_rate"),
           "n_action_steps": {str(default): {"success_rate": demo["success_rate"], "ci95": demo["ci95"]}}}
    print(f"seed {seed}: {wall / 60:.1f} min, success {demo['success_rate']:.2f} (n_action_steps {default})",
          flush=True)
    for k in horizons:
        if k == default:
            continue
        ev = cli("eval", "--checkpoint", str(out / "run"), "--out", str(out / f"eval_ta{k}"), *sets,
                 f"model.n_action_steps={k}")
        row["n_action_steps"][str(k)] = {"success_rate": ev["success_rate"], "ci95": ev["ci95"]}
        print(f"  n_action_steps {k}: {ev['success_rate']:.2f}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="train.seed of each demo run")
    ap.add_argument("--horizons", type=int, nargs="+", default=[1, 2, 3, 4, 8],
                    help="n_action_steps to evaluate each checkpoint with (the config's own is the demo's eval)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a fresh temporary one)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/demo.json")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="an override for the demo and the evals (recorded; the recorded result has none)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="robolearn-demo-bench-"))
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        raise SystemExit(f"--work {args.work} is not empty: name a new folder (its runs are kept, never replaced)")
    rows = [one_seed(s, work, args.horizons, args.sets) for s in args.seeds]
    result = {
        "benchmark": "make demo end to end (robolearn demo: collect 150 expert episodes, train, eval 50 episodes) per "
                     "training seed; the checkpoints also evaluated at other n_action_steps",
        "config": yaml.safe_load((ROOT / "configs/demo/default.yaml").read_text()),
        "overrides": args.sets,
        "targets": {"wall_s_max": 900, "success_min": 0.80},
        "runs": rows,
        "met": {"wall": all(r["wall_s"] <= 900 for r in rows), "success": all(r["success_rate"] >= 0.80 for r in rows)},
        "work": str(work),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine("torch", "mujoco", note="run alone: nothing else ran on the machine"),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["met"]), "->", args.out)


if __name__ == "__main__":
    main()
