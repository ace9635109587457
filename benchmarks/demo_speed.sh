#!/bin/bash
# Training speed of the `make demo` config (configs/demo/default.yaml), this checkout against an older commit,
# on the same machine, alternating, twice each: the VM's speed drifts between days, so a demo time recorded on
# another day compares only through this ratio.
#   bash benchmarks/demo_speed.sh [OLD_COMMIT] [STEPS]      (default a4efb13: the code `make demo` was timed with
#                                                           on 2026-11-30; 300 steps). Run alone; ~12 min.
# Prints one line per run with samples/s (the last logged window). Needs `make install` first.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OLD=${1:-a4efb13}; STEPS=${2:-300}
WORK=$(mktemp -d); trap 'git -C "$ROOT" worktree remove --force "$WORK/old" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
git -C "$ROOT" worktree add --detach "$WORK/old" "$OLD" >/dev/null 2>&1
PY=$ROOT/.venv/bin/python
unset OMP_NUM_THREADS; export MUJOCO_GL=${MUJOCO_GL:-egl}
cd "$WORK"  # not the checkout: `python -c` puts the cwd first on sys.path
cli() { PYTHONPATH=$1 "$PY" -c "from robolearn.cli.main import main; main()" "${@:2}"; }
cli "$WORK/old:$WORK/old/envs" collect demo=default --out "$WORK/old.zarr" --json >/dev/null 2>&1
cli "" collect demo=default --out "$WORK/new.zarr" --json >/dev/null 2>&1
for r in 1 2; do
  for v in old new; do
    if [ $v = old ]; then pp="$WORK/old:$WORK/old/envs"; else pp=""; fi
    cli "$pp" train demo=default train.steps="$STEPS" train.val_every=100000 train.log_every=50 \
      --store "$WORK/$v.zarr" --out "$WORK/run_${v}_$r" --json >/dev/null 2>&1
    echo "$v run $r: $(tail -1 "$WORK/run_${v}_$r/metrics.jsonl" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["samples_per_s"], 1))') samples/s"
  done
done
