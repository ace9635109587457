"""The issue #6 comparison benchmarks end to end on a tiny budget (slow: they collect, train and evaluate)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "PYTHONPATH": str(ROOT)}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


@pytest.mark.slow
def test_rdp_comparison_smoke(tmp_path):
    result = tmp_path / "rdp.json"
    run(str(ROOT / "benchmarks" / "rdp.py"), "--compare", str(tmp_path / "wipe.zarr"), "--demos", "4",
        "--steps", "20", "--tok-steps", "20", "--episodes", "2", "--calls", "2", "--workdir", str(tmp_path / "w"),
        "--out", str(result), cwd=tmp_path)
    data = json.loads(result.read_text())
    assert {"latency", "comparison"} <= set(data)
    evals = data["comparison"]["eval"]
    assert "rdp" in evals and any(k.startswith("dp") for k in evals)


@pytest.mark.slow
def test_world_models_comparison_smoke(tmp_path):
    results = tmp_path / "results"
    run(str(ROOT / "benchmarks" / "world_models.py"), "--tasks", "reach-v3", "drawer-close-v3", "--labeled", "2",
        "--action-free", "1", "--ae-steps", "10", "--steps", "10", "--episodes", "1", "--out", str(tmp_path / "wm"),
        "--results", str(results), "--no-progress", cwd=tmp_path)
    data = json.loads((results / "world_models.json").read_text())
    assert set(data["variants"]) == {"dp", "pad", "uwm", "uwm+video"}
    assert data["stores"]["mixed"]["action_free_episodes"] == 2 and data["stores"]["labeled"]["episodes"] == 4
    for v in data["variants"].values():
        assert v["episodes"] == 2 and v["train"]["steps"] == 10
    assert (results / "world_models.md").read_text().startswith("# Metaworld MT10 with images")
    assert (results / "world_models.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_demo_benchmark_smoke(tmp_path):
    """benchmarks/demo.py on a tiny budget: one demo per seed, its checkpoint evaluated at every other horizon."""
    result = tmp_path / "demo.json"
    tiny = ["collect.episodes=2", "train.steps=2", "train.batch_size=8", "train.val_ratio=0", "eval.episodes=1",
            "eval.video_episodes=1"]
    run(str(ROOT / "benchmarks" / "demo.py"), "--seeds", "0", "--horizons", "1", "2", "--work", str(tmp_path / "w"),
        "--out", str(result), *[f"--set={o}" for o in tiny], cwd=tmp_path)
    data = json.loads(result.read_text())
    (row,) = data["runs"]
    assert data["overrides"] == tiny and data["config"]["model"]["n_action_steps"] == 2
    assert set(row["n_action_steps"]) == {"1", "2"} and row["wall_s"] > 0
    assert row["n_action_steps"]["2"]["success_rate"] == row["success_rate"]
    assert (tmp_path / "w" / "seed0" / "eval_ta1" / "eval.json").is_file()
    assert json.loads((tmp_path / "w" / "seed0" / "eval_ta1" / "eval.json").read_text())["model_overrides"] == {
        "n_action_steps": 1}


@pytest.mark.slow
def test_safety_benchmark_smoke(tmp_path):
    result = tmp_path / "safety.json"
    run(str(ROOT / "benchmarks" / "safety.py"), "--calls", "1000", "--out", str(result), cwd=tmp_path)
    data = json.loads(result.read_text())
    assert set(data["filter"]) == {"chain", "chain+workspace"}
    assert set(data["filter"]["chain"]) == {"inside", "clipped", "nonfinite", "malformed"}
    assert data["machine"]["cores"] and data["worst_cost_us_chain"] > 0


@pytest.mark.slow
def test_server_benchmark_smoke(tmp_path):
    result = tmp_path / "server.json"
    run(str(ROOT / "benchmarks" / "server.py"), "--calls", "200", "--round-trips", "50", "--dp-calls", "1",
        "--out", str(result), cwd=tmp_path)
    data = json.loads(result.read_text())
    assert data["codec"]["obs_To2"]["frame_bytes"] > 2 * 2 * 96 * 96 * 3
    assert data["loopback_round_trip"]["n"] == 50 and data["dp"]["same_chunks"] is True
    assert data["machine"]["pyzmq"] and isinstance(data["meets_target"], bool)


@pytest.mark.slow
def test_rtc_overhead_benchmark_smoke(tmp_path):
    result = tmp_path / "rtc_overhead.json"
    run(str(ROOT / "benchmarks" / "rtc_overhead.py"), "--calls", "2", "--block", "1", "--train-steps", "2",
        "--out", str(result), cwd=tmp_path)
    data = json.loads(result.read_text())
    assert set(data["results"]) == {f"{p}/{o}" for p in ("flow", "diffusion") for o in ("state", "state+camera96")}
    for r in data["results"].values():
        assert r["plain"]["calls"] == 2 and r["plain"]["cpu_p50_ms"] > 0
        assert {"overhead_p50", "overhead_cpu_p50"} <= set(r["guided"]) and "overhead_cpu_p50" in r["trained"]
        assert {"overhead_cpu_p50"} <= set(r["guided_vjp1"]) and "overhead_cpu_p50" in r["guided_full"]
    for q in data["quality"].values():
        assert set(q) >= {"plain", "guided", "guided_vjp1", "guided_full"} and q["train_steps"] == 2
        assert q["guided"]["prefix_err"] >= 0 and q["guided"]["seam_p50"] > 0
    assert isinstance(data["met"]["guided"], bool) and data["machine"]["torch"]


def test_deploy_seams_keep_the_episode_start_apart():
    sys.path.insert(0, str(ROOT))
    from benchmarks.deploy_seams import seam_summary, seam_terms

    # two holds while the first chunk is computed, chunk 0 for three ticks, then chunk 1
    actions = np.array([[0, 0], [0, 0], [1, 1], [1, 1.1], [1, 1.2], [0.5, 1.2], [0.5, 1.25]])
    sources = np.array([-1, -1, 0, 0, 0, 1, 1])
    terms = seam_terms(actions, sources)
    assert terms["seam"] == pytest.approx([0.5])  # the switch from chunk 0 to chunk 1 only
    assert terms["start"] == pytest.approx([np.sqrt(2)])  # standstill -> the first action
    assert terms["within"] == pytest.approx([0.1, 0.1, 0.05])
    assert len(terms["seam_jerk"]) == 2 and len(terms["start_jerk"]) == 2 and len(terms["jerk"]) == 4
    assert terms["within_jerk"] == []  # every window of this short trace touches a switch
    s = seam_summary(terms)
    assert s["seam_ratio"] == pytest.approx(5.0) and s["n_starts"] == 1
    assert s["seam_ratio_with_start"] == pytest.approx(np.median([0.5, np.sqrt(2)]) / 0.1)
    assert s["seam_rms_jerk_with_start"] == pytest.approx(s["rms_jerk"])  # every window touches a switch here
    assert s["seam_rms_jerk_with_start"] > 2 * s["seam_rms_jerk"]
    # a hold in the middle of an episode is a switch like any other
    mid = seam_terms(np.array([[1, 1], [1, 1], [0, 0], [1, 1]]), np.array([0, 0, -1, 1]))
    assert mid["seam"] == pytest.approx([np.sqrt(2), np.sqrt(2)]) and mid["start"] == []


def test_deploy_seams_seamless_reference():
    """At each switch between chunks the old chunk's own planned step is kept ("continuation"): the seam ratio
    a join with no discontinuity of its own would score."""
    sys.path.insert(0, str(ROOT))
    from types import SimpleNamespace

    from benchmarks.deploy_seams import Trace, seam_summary, seam_terms

    from robolearn.runtime.scheduler import PlannedAction

    old = SimpleNamespace(chunk=np.array([[0.0, 0], [0.1, 0], [0.2, 0], [0.5, 0]]))  # its step 2 -> 3 is 0.3
    new = SimpleNamespace(chunk=np.array([[0.9, 0], [0.95, 0], [1.0, 0], [1.0, 0]]))
    plan = [PlannedAction(old.chunk[i], i, 0, i, old) for i in range(3)] + \
        [PlannedAction(new.chunk[i], 3 + i - 1, 1, i, new) for i in range(1, 3)]
    sched = SimpleNamespace(n_executed=0, last=None)
    trace = Trace(sched)
    for p in [None] + plan:  # one hold, then 0.0, 0.1, 0.2 from the old chunk, 0.95, 1.0 from the new one
        if p is not None:
            sched.n_executed += 1
            sched.last = p
        trace.on_step(SimpleNamespace(action=np.zeros(2) if p is None else p.action, info={}))
    assert trace.sources == [-1, 0, 0, 0, 1, 1]
    cont = np.asarray(trace.continuation)
    assert np.isnan(cont[[0, 1, 2, 3, 5]]).all() and cont[4] == pytest.approx(0.3)
    terms = seam_terms(np.asarray(trace.actions), np.asarray(trace.sources), cont)
    assert terms["seam"] == pytest.approx([0.75]) and terms["continuation"] == pytest.approx([0.3])
    s = seam_summary(terms)
    assert s["seam_ratio"] == pytest.approx(0.75 / 0.1) and s["seamless_ratio"] == pytest.approx(0.3 / 0.1)
    assert s["n_continuation"] == 1
    assert seam_summary(seam_terms(np.asarray(trace.actions), np.asarray(trace.sources)))["seamless_ratio"] is None


@pytest.mark.slow
def test_deploy_benchmark_smoke(tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    common = ["--results", str(results), "--workdir", str(work)]
    run(str(ROOT / "benchmarks" / "deploy.py"), "--part", "train", "--part", "success", "--part", "summary",
        "--policies", "flow", "--methods", "rtc", "--delays", "4", "--episodes", "2", "--episodes-quarter", "2",
        "--demos", "4", "--train-steps", "20", *common, cwd=tmp_path)
    runs = json.loads((work / "runs.json").read_text())
    assert runs["expert_max_change"] == 0.3 and runs["collect"]["episodes"] == 4
    assert (work / "flow-rtc" / "config.json").is_file() and not (work / "diffusion").exists()  # --policies flow
    refused = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "deploy.py"), "--part", "train",
                              "--expert-max-change", "none", *common], cwd=tmp_path, env=ENV, capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode != 0 and "max_change 0.3, not None" in refused.stderr
    cell = json.loads((results / "deploy" / "cells" / "flow-rtc-D4.json").read_text())
    assert cell["episodes"] == 2 and len(cell["per_episode_success"]) == 2 and cell["rtc_variant"] == "guided"
    assert 0.0 <= cell["ci95"][0] <= cell["success_rate"] <= cell["ci95"][1] <= 1.0
    assert cell["scheduler"]["merged"] > 0 and cell["seams"]["n_seams"] > 0
    data = json.loads((results / "deploy.json").read_text())
    assert [(r["method"], r["delay"]) for r in data["success_vs_delay"]] == [("rtc", 4)]
    assert (results / "deploy_success_vs_delay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # resumable: a second run reuses the finished cell (same weights) instead of recomputing it
    before = (results / "deploy" / "cells" / "flow-rtc-D4.json").stat().st_mtime_ns
    run(str(ROOT / "benchmarks" / "deploy.py"), "--part", "success", "--policies", "flow", "--methods", "rtc",
        "--delays", "4", "--episodes", "2", "--episodes-quarter", "2", *common, cwd=tmp_path)
    assert (results / "deploy" / "cells" / "flow-rtc-D4.json").stat().st_mtime_ns == before
    # ... but not one computed with other RTC settings: the cell is keyed on them
    run(str(ROOT / "benchmarks" / "deploy.py"), "--part", "success", "--policies", "flow", "--methods", "rtc",
        "--delays", "4", "--episodes", "2", "--episodes-quarter", "2", "--max-guidance", "10", *common, cwd=tmp_path)
    cell = json.loads((results / "deploy" / "cells" / "flow-rtc-D4.json").read_text())
    assert cell["rtc"]["max_guidance"] == 10.0 and cell["rtc"]["vjp_steps"] == 0 and cell["rtc"]["version"] >= 1
    assert (results / "deploy" / "cells" / "flow-rtc-D4.json").stat().st_mtime_ns != before
    run(str(ROOT / "benchmarks" / "deploy.py"), "--part", "watchdog", "--watchdog-trials", "3", *common, cwd=tmp_path)
    wd = json.loads((results / "deploy" / "watchdog.json").read_text())
    assert wd["loop_check"]["n"] == 3 and wd["thread"]["n"] == 3 and wd["budget_ms"] == 25.0


def test_conv_roofline_counts_the_multiply_adds_of_each_gradient():
    import torch

    sys.path.insert(0, str(ROOT))
    from benchmarks.conv_roofline import MacCounter

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 4, 1), torch.nn.Flatten(), torch.nn.Linear(4 * 25, 6))
    counter = MacCounter(net)
    net(torch.rand(2, 3, 5, 5)).sum().backward()
    counter.remove()
    conv = 2 * 8 * 25 * 3 * 9 + 2 * 4 * 25 * 8
    assert counter.fwd == {"conv": conv, "linear": 2 * 6 * 100}
    # The first convolution's input needs no gradient: weight gradients everywhere, input gradients after it.
    assert counter.bwd == {"conv": conv + 2 * 4 * 25 * 8, "linear": 2 * (2 * 6 * 100)}
    net(torch.rand(2, 3, 5, 5))
    assert counter.fwd["conv"] == conv  # hooks removed


def test_policies_vs_lerobot_worker_runs_our_trainer_step_in_its_own_process():
    # The as-shipped side of benchmarks/policies_vs_lerobot.py without lerobot: its protocol and settings.
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "policies_vs_lerobot.py"), "--worker",
                           "ours_trainer", "--batch", "2", "--threads", "1"], input="step\nstep\nstop\nstep\n",
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines[0]["ready"] == "ours_trainer"
    assert lines[0]["settings"] == {"keep_freed_memory": sys.platform == "linux"}
    assert len(lines) == 3 and all(line["s"] > 0 for line in lines[1:])  # "stop" ends it before the last step
