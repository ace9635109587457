"""`robolearn deploy` in sim on a tiny trained reach policy: every inference/join/backend choice, the recorded
store, sync deploy repeating eval's rollouts, and one-sentence errors."""

import os

import numpy as np
import pytest

from tests.cli.test_smoke import last_json, run

TASK = ["task=mujoco-reach", "task.env_kwargs.cameras=[]", "task.max_steps=12"]
TINY = ["model.down_dims=[16,32]", "model.diffusion_step_embed_dim=16", "model.horizon=8", "model.n_action_steps=4",
        "model.num_inference_steps=3", "train.steps=4", "train.batch_size=8", "train.val_ratio=0"]


def deploy(*args, **kwargs):
    """`robolearn deploy` with eager policies (compiling costs 30-100 s here; test_compiled_deploy_* compiles)."""
    return run("deploy", "--no-compile", *args, **kwargs)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    run("collect", *TASK, "--episodes", 3, "--out", root / "reach.zarr", "--json")
    for policy in ("flow", "diffusion"):
        run("train", *TASK, f"policy={policy}", *TINY, "--store", root / "reach.zarr", "--out", root / policy, "--json")
    return root


@pytest.mark.parametrize("args", [
    ["--inference", "sync"],
    ["--inference", "sync", "--join", "ensemble"],
    ["--inference", "async", "--backend", "sim:2"],
    ["--inference", "async", "--backend", "sim:1", "--join", "ensemble"],
    ["--inference", "async", "--backend", "sim:2", "--join", "rtc"],
    ["--inference", "async", "--realtime", "--fps", "40"],
    ["--inference", "async", "--realtime", "--fps", "40", "--join", "rtc", "--backend", "thread"],
], ids=lambda a: "-".join(x.lstrip("-") for x in a))
def test_each_mode_runs_and_summarises(runs, args):
    out = last_json(deploy(*TASK, "--checkpoint", runs / "flow", "--episodes", 2, "--seed", 5, *args,
                        "--json").output)
    assert out["episodes"] == 2 and len(out["per_episode"]) == 2 and 0.0 <= out["success_rate"] <= 1.0
    lo, hi = out["ci95"]
    assert 0.0 <= lo <= out["success_rate"] <= hi <= 1.0
    assert out["inference"] == args[1] and out["realtime"] == ("--realtime" in args)
    for ep in out["per_episode"]:
        assert ep["steps"] == 12 and ep["scheduler"]["executed"] + ep["holds"] == 12
        assert ep["safety"]["calls"] + ep["safety"]["holds"] >= 12
    assert out["holds"] == sum(e["holds"] for e in out["per_episode"])
    assert {"obs_to_action_p50", "obs_to_action_p99"} <= set(out["latency_ms"])
    assert out["latency_ms"]["obs_to_action_p50"] <= out["latency_ms"]["obs_to_action_p99"]
    if "sim:2" in args:  # virtual time: the first chunk arrives 2 ticks after the first observation
        assert all(ep["holds"] == 2 for ep in out["per_episode"]) and out["missed_ticks"] == 0
        assert out["latency_ms"]["obs_to_action_p50"] >= 200.0 - 1e-6


def test_rtc_on_a_diffusion_policy(runs):
    out = last_json(deploy(*TASK, "--checkpoint", runs / "diffusion", "--episodes", 1, "--inference", "async",
                        "--backend", "sim:1", "--join", "rtc", "--json").output)
    assert out["join"] == "rtc" and out["per_episode"][0]["steps"] == 12 and out["rtc_variant"] == "guided"
    assert out["rtc_guidance"] == {"max_guidance": 5.0, "vjp_steps": 0}  # the defaults, recorded


def spy_inpainting(monkeypatch) -> list:
    """Every `Inpainting` the RTC join builds (`ChunkPolicyAdapter` -> `Inpainting.from_plan`), as
    (max_guidance, vjp_steps)."""
    from robolearn.policies.rtc import Inpainting

    built, original = [], Inpainting.from_plan.__func__

    def from_plan(cls, *args, **kwargs):
        inpaint = original(cls, *args, **kwargs)
        if inpaint is not None:
            built.append((inpaint.max_guidance, inpaint.vjp_steps))
        return inpaint
    monkeypatch.setattr(Inpainting, "from_plan", classmethod(from_plan))
    return built


@pytest.mark.parametrize("flags,expect", [(["--max-guidance", "2.5", "--rtc-vjp-steps", "1"], (2.5, 1)),
                                          (["--rtc-vjp-steps", "all"], (5.0, None))])
def test_rtc_guidance_flags_reach_the_join_and_the_summary(runs, monkeypatch, flags, expect):
    built = spy_inpainting(monkeypatch)
    out = last_json(deploy(*TASK, "--checkpoint", runs / "diffusion", "--episodes", 1, "--inference", "async",
                           "--backend", "sim:1", "--join", "rtc", *flags, "--json").output)
    assert len(built) >= 2 and set(built) == {expect}
    assert out["rtc_guidance"] == {"max_guidance": expect[0], "vjp_steps": expect[1]}


def test_inference_steps_replace_the_checkpoints(runs):
    """--inference-steps: the policy denoises with that many steps (its config's range checked); the summary says
    how many ran, in this process and in the process backend's child."""
    default = last_json(deploy(*TASK, "--checkpoint", runs / "diffusion", "--episodes", 1, "--json").output)
    assert default["inference_steps"] == 3  # TINY's num_inference_steps
    out = last_json(deploy(*TASK, "--checkpoint", runs / "diffusion", "--episodes", 1, "--inference-steps", 7,
                           "--json").output)
    assert out["inference_steps"] == 7 and out["per_episode"][0]["steps"] == 12
    child = last_json(deploy(*TASK, "--checkpoint", runs / "flow", "--episodes", 1, "--inference", "async",
                             "--backend", "process", "--realtime", "--fps", "20", "--inference-steps", 2,
                             "--json").output)
    assert child["inference_steps"] == 2 and child["backend"] == "process"
    bad = deploy(*TASK, "--checkpoint", runs / "diffusion", "--inference-steps", 5000, ok=False)
    assert bad.exit_code == 2 and "num_inference_steps must be in [1, num_train_timesteps=" in bad.output
    assert "Traceback" not in bad.output


def test_rtc_uses_a_checkpoints_training_time_variant(runs, tmp_path):
    """A policy trained with frozen prefixes deploys under --join rtc with them fixed, no guidance."""
    run("train", *TASK, "policy=flow", *TINY, "model.rtc_training_max_delay=2", "--store", runs / "reach.zarr",
        "--out", tmp_path / "flow-rtc", "--json")
    out = last_json(deploy(*TASK, "--checkpoint", tmp_path / "flow-rtc", "--episodes", 1, "--inference", "async",
                        "--backend", "sim:2", "--join", "rtc", "--json").output)
    assert out["rtc_variant"] == "trained" and out["per_episode"][0]["steps"] == 12 and out["rtc_guidance"] is None
    guided = deploy(*TASK, "--checkpoint", tmp_path / "flow-rtc", "--inference", "async", "--backend", "sim:2",
                    "--join", "rtc", "--max-guidance", "2", ok=False)
    assert guided.exit_code == 2 and "was trained for training-time RTC" in guided.output


def test_sync_deploy_repeats_eval(runs, tmp_path):
    """D = 0 and a filter that only keeps actions in the env's bounds: the same episodes as eval."""
    args = [*TASK, "--checkpoint", runs / "flow", "--episodes", 3, "--seed", 11, "--json"]
    ev = last_json(run("eval", *args, "--out", tmp_path / "eval").output)
    dep = last_json(deploy(*args, "--safety", "default").output)
    assert [e["success"] for e in dep["per_episode"]] == [e["success"] for e in ev["episodes"]]
    assert [e["steps"] for e in dep["per_episode"]] == [e["length"] for e in ev["episodes"]]
    assert [e["reward"] for e in dep["per_episode"]] == pytest.approx([e["reward"] for e in ev["episodes"]])
    assert dep["success_rate"] >= ev["success_rate"] and dep["holds"] == 0


def test_model_overrides_act_alike_in_deploy_and_eval(runs, tmp_path):
    """model.n_action_steps / model.num_inference_steps change how the trained policy acts, in deploy as in eval
    (sync deploy still repeats eval's episodes); an architecture field or a second, different step count is
    refused in one sentence."""
    over = ["model.n_action_steps=2", "model.num_inference_steps=2"]
    args = [*TASK, "--checkpoint", runs / "diffusion", "--episodes", 2, "--seed", 5, "--json", *over]
    ev = last_json(run("eval", *args, "--out", tmp_path / "eval").output)
    dep = last_json(deploy(*args, "--safety", "default").output)
    assert ev["model_overrides"] == {"n_action_steps": 2, "num_inference_steps": 2} and dep["inference_steps"] == 2
    assert [e["steps"] for e in dep["per_episode"]] == [e["length"] for e in ev["episodes"]]
    assert [e["reward"] for e in dep["per_episode"]] == pytest.approx([e["reward"] for e in ev["episodes"]])
    child = last_json(deploy(*TASK, "--checkpoint", runs / "flow", "--episodes", 1, "--inference", "async",
                             "--backend", "process", "--realtime", "--fps", "20", "--json", *over).output)
    assert child["inference_steps"] == 2 and child["per_episode"][0]["steps"] == 12  # the child's own copy agrees
    bad = deploy(*TASK, "--checkpoint", runs / "diffusion", "model.horizon=16", ok=False)
    assert bad.exit_code == 2 and "model.horizon=16 differs from the 8" in bad.output
    from robolearn.deploy import DeployConfig  # the same route for a caller of deploy_checkpoint

    cfg = DeployConfig(model_overrides={"num_inference_steps": 3, "n_action_steps": 2})
    assert (cfg.inference_steps, cfg.model_overrides) == (3, {"n_action_steps": 2})
    both = deploy(*TASK, "--checkpoint", runs / "diffusion", "--inference-steps", 3, "model.num_inference_steps=2",
                  ok=False)
    assert both.exit_code == 2 and "--inference-steps 3 and model.num_inference_steps=2 disagree" in both.output


def test_a_served_policy_must_compute_what_the_checkpoint_does(runs):
    """The server's (or inference process's) hello must agree on keys, To, horizon and Da; n_action_steps is the
    deploying side's choice (model.n_action_steps), so a server announcing another is accepted."""
    from types import SimpleNamespace

    from robolearn.deploy import _Served
    from robolearn.policies import load
    from robolearn.runtime.chunk_policy import ChunkPolicyAdapter

    local = ChunkPolicyAdapter(load(runs / "flow", overrides={"n_action_steps": 2}))
    hello = {"input_keys": list(local.input_keys), "n_obs_steps": local.n_obs_steps, "horizon": 8,
             "n_action_steps": 4, "action_dim": int(local.policy.action_dim)}
    served = _Served(SimpleNamespace(info=hello), local, None, "tcp://127.0.0.1:1")
    assert (served.n_action_steps, served.horizon) == (2, 8)
    with pytest.raises(ValueError, match=r"does not match the checkpoint: horizon 16 \(checkpoint: 8\); serve the "
                                         r"same run"):
        _Served(SimpleNamespace(info={**hello, "horizon": 16}), local, None, "tcp://127.0.0.1:1")


def test_recorded_store_has_sent_commanded_and_timing(runs, tmp_path):
    from robolearn.store.reader import Store

    store = tmp_path / "deployed.zarr"
    out = last_json(deploy(*TASK, "--checkpoint", runs / "flow", "--episodes", 2, "--inference", "async",
                        "--backend", "sim:3", "--out", store, "--json").output)
    s = Store.open(store)
    assert list(s.lengths) == [12, 12] and list(s.episodes["held_ticks"]) == [3, 3]
    for i in range(2):
        ep = s.episode(i)
        assert ep["action"].shape == ep["action_commanded"].shape == (12, 3)
        assert np.all(np.isfinite(ep["action"])) and np.all(np.abs(ep["action"]) <= 1.0)
        assert not np.isnan(ep["timing/applied"]).any()
        for stage in ("obs_capture", "request", "inference_start", "inference_end", "delivery"):
            assert ep[f"timing/{stage}"].shape == (12,)
            assert np.isnan(ep[f"timing/{stage}"]).tolist() == [True] * 3 + [False] * 9  # the 3 held ticks
        # virtual time: applied at its tick, its observation >= 3 ticks older
        assert ep["timing/applied"] == pytest.approx(np.arange(12) * 0.1)
        assert np.all(ep["timing/applied"][3:] - ep["timing/obs_capture"][3:] >= 0.3 - 1e-9)
    again = deploy(*TASK, "--checkpoint", runs / "flow", "--episodes", 1, "--out", store, ok=False)
    assert again.exit_code == 2 and "--resume" in again.output and out["store"] == str(store.resolve())


def test_live_view_keys_end_episodes(runs, tmp_path):
    """deploy --view: the live session's keys (queued here as the page's buttons would) discard and re-record
    episodes and save one early; the store keeps exactly the saved ones; the page's address was served."""
    from robolearn.deploy import DeployConfig, deploy_checkpoint
    from robolearn.store.reader import Store
    from robolearn.view.live import LiveSession, LiveViewConfig

    live = LiveSession("deploy", fps=10)
    pressed = iter(["discard", "rerecord", None, "save"])  # one key per episode, at its 4th tick (None: runs out)
    on_step = live.on_step

    def press_at_fourth_tick(rec):
        on_step(rec)
        if live.snapshot()["frames"] == 4:
            key = next(pressed, None)
            if key:
                live.press(key)
    live.on_step = press_at_fourth_tick
    store = tmp_path / "live.zarr"
    out = deploy_checkpoint(runs / "flow", DeployConfig(inference="async", backend="sim:1", episodes=2, seed=5,
                                                        max_steps=12, compile=False),
                            env_kwargs={"cameras": []}, out=store, progress=False, view=LiveViewConfig(port=0), live=live)
    assert out["live"]["discarded"] == 1 and out["live"]["rerecorded"] == 1 and not out["live"]["quit"]
    assert out["live"]["url"].startswith("http://127.0.0.1:") and out["live"]["url"].endswith("/live")
    assert [e["seed"] for e in out["per_episode"]] == [6, 7] and [e["steps"] for e in out["per_episode"]] == [12, 4]
    s = Store.open(store)
    assert s.lengths.tolist() == [12, 4] and s.episodes["seed"].tolist() == [6, 7]
    assert s.episodes["status"].tolist() == [2, 0]  # max_steps cut the first ("truncated"); the operator saved the second ("ok")
    snap = live.snapshot()
    assert snap["phase"] == "stopped" and [h["event"] for h in snap["history"]] == ["save", "save", "rerecord", "discard"]
    assert "inference_start→inference_end" in snap["timing"]["stages_ms"]
    bad = deploy(*TASK, "--checkpoint", runs / "flow", "--allow-remote", ok=False)
    assert bad.exit_code == 2 and "--allow-remote configure the live view: add --view" in bad.output
    bad = deploy(*TASK, "--checkpoint", runs / "flow", "--view", "--view-host", "0.0.0.0", ok=False)
    assert bad.exit_code == 2 and "not a loopback address" in bad.output


@pytest.mark.parametrize("args,msg", [
    (["--join", "rtc"], "--join rtc needs --inference async"),
    (["--inference", "async", "--backend", "thread"], "add --realtime"),
    (["--inference", "async", "--backend", "gpu"], "use one of: thread, process, server, sim:D"),
    (["--inference", "async", "--backend", "process"], "add --realtime"),
    (["--inference", "async", "--realtime", "--rt-priority", "10"], "--rt-priority applies to --backend process"),
    (["--inference", "async", "--realtime", "--backend", "process", "--rt-priority", "0"],
     "outside SCHED_FIFO's range; use 1..99"),
    (["--require-rt"], "--require-rt needs --rt-priority N"),
    (["--inference", "sync", "--backend", "sim:2"], "applies to --inference async"),
    (["--join", "average"], "use one of: naive, ensemble, rtc"),
    (["--inference", "async", "--join", "rtc", "--rtc-vjp-steps", "-1"],
     "--rtc-vjp-steps -1 is not accepted; use an integer >= 0 (denoising steps guided through the denoiser's VJP) "
     "or 'all'"),
    (["--inference", "async", "--join", "rtc", "--rtc-vjp-steps", "1.5"], "--rtc-vjp-steps '1.5' is not accepted"),
    (["--inference", "async", "--join", "rtc", "--max-guidance", "0"],
     "--max-guidance 0.0 is not accepted; use a finite number > 0"),
    (["--inference", "async", "--join", "rtc", "--max-guidance", "inf"], "--max-guidance inf is not accepted"),
    (["--inference", "async", "--max-guidance", "2"], "apply to --join rtc, not to --join naive"),
    (["--inference", "async", "--join", "rtc", "--backend", "server", "--realtime", "--rtc-vjp-steps", "2"],
     "the server guides RTC: pass --max-guidance and --rtc-vjp-steps to `robolearn serve`"),
    (["--inference-steps", "0"], "--inference-steps must be >= 1, got 0"),
    (["--inference", "async", "--backend", "server", "--realtime", "--inference-steps", "2"],
     "the server runs the policy: pass --inference-steps to `robolearn serve` instead"),
])
def test_bad_choices_are_one_sentence(runs, args, msg):
    res = deploy(*TASK, "--checkpoint", runs / "flow", *args, ok=False)
    assert res.exit_code == 2 and msg in res.output and "Traceback" not in res.output


def test_deploy_through_a_policy_server(runs, tmp_path):
    """--backend server: the chunks come from `robolearn serve`'s PolicyServer (in a thread here, loopback)."""
    from robolearn.policies import load
    from robolearn.runtime import wire
    from robolearn.runtime.server import PolicyServer, TorchServedPolicy

    key_file = tmp_path / "server.key"
    key, _ = wire.load_key(key_file)
    served = TorchServedPolicy(load(runs / "flow", inference_steps=2))  # `robolearn serve --inference-steps 2`
    with PolicyServer(served, key, "127.0.0.1", 0).start() as server:
        out = last_json(deploy(*TASK, "--checkpoint", runs / "flow", "--episodes", 2, "--inference", "async",
                            "--backend", "server", "--connect", server.address, "--key-file", key_file,
                            "--realtime", "--fps", "40", "--json").output)
    assert out["backend"] == "server" and out["episodes"] == 2
    assert out["inference_steps"] == 2  # the server's, from its hello (the checkpoint says 3)
    for ep in out["per_episode"]:
        assert ep["steps"] == 12 and ep["scheduler"]["merged"] >= 2 and ep["scheduler"]["executed"] + ep["holds"] == 12
    wrong = deploy(*TASK, "--checkpoint", runs / "flow", "--backend", "server", "--connect", "tcp://127.0.0.1:1",
                ok=False)
    assert wrong.exit_code == 2 and "--inference async" in wrong.output


def test_a_policy_server_guides_rtc_with_its_own_settings(runs, tmp_path, monkeypatch):
    """--backend server --join rtc: the server's `--max-guidance`/`--rtc-vjp-steps` guide the prefixes the client
    sends, and the deploy summary records them."""
    from robolearn.policies import load
    from robolearn.runtime import wire
    from robolearn.runtime.server import PolicyServer, TorchServedPolicy

    built = spy_inpainting(monkeypatch)  # the server runs in a thread of this process
    key_file = tmp_path / "server.key"
    key, _ = wire.load_key(key_file)
    served = TorchServedPolicy(load(runs / "flow"), max_guidance=3.0, vjp_steps=None)
    with PolicyServer(served, key, "127.0.0.1", 0).start() as server:
        out = last_json(deploy(*TASK, "--checkpoint", runs / "flow", "--episodes", 1, "--inference", "async",
                               "--backend", "server", "--connect", server.address, "--key-file", key_file,
                               "--realtime", "--fps", "40", "--join", "rtc", "--json").output)
    assert out["rtc_guidance"] == {"max_guidance": 3.0, "vjp_steps": None} and set(built) <= {(3.0, None)}
    if out["per_episode"][0]["scheduler"]["merged"] >= 2:  # a second chunk had a prefix: the server guided it
        assert built


def test_deploy_through_the_process_backend(runs):
    """--backend process --realtime (with RTC: the prefix crosses the socket): the child loads the checkpoint on
    the other core(s), the loop's thread is pinned with the GC frozen and gets its affinity back afterwards,
    SCHED_FIFO is used or a note says it is not permitted, and the child is gone at the end."""
    from robolearn.runtime.rt import split_cores

    before = os.sched_getaffinity(0)
    out = last_json(deploy(*TASK, "--checkpoint", runs / "flow", "--episodes", 2, "--inference", "async", "--backend",
                           "process", "--realtime", "--fps", "20", "--join", "rtc", "--rt-priority", "10",
                           "--max-guidance", "4", "--json").output)
    assert out["backend"] == "process" and out["episodes"] == 2 and out["compile"]["enabled"] is False
    assert out["rtc_guidance"] == {"max_guidance": 4.0, "vjp_steps": 0}  # what the child reports it applies
    assert out["compile"]["compiled"] is False
    for ep in out["per_episode"]:  # (how many chunks arrive within 12 ticks depends on the machine's load)
        assert ep["steps"] == 12 and ep["scheduler"]["merged"] >= 1 and ep["scheduler"]["executed"] + ep["holds"] == 12
    proc, rt = out["process"], out["process"]["rt"]
    loop_cpus, inference_cpus, _ = split_cores()
    if inference_cpus is not None:
        assert proc["cpus"] == sorted(inference_cpus) and rt["loop_cpus"] == sorted(loop_cpus)
    assert rt["gc_frozen"] and proc["ready_s"] > 0 and proc["pid"] != os.getpid()
    assert rt["sched_fifo"] or any("SCHED_FIFO priority 10 is not permitted" in n for n in rt["notes"])
    with pytest.raises(ProcessLookupError):
        os.kill(proc["pid"], 0)
    assert os.sched_getaffinity(0) == before


@pytest.mark.slow
def test_compiled_deploy_starts_warm_from_the_compile_cache(runs, tmp_path, monkeypatch):
    """compile is deploy's default: the policy is compiled (checked against eager) in the child and in process;
    a second start loads the AOTInductor packages of the first (a fresh XDG_CACHE_HOME here) and is faster."""
    import shutil

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    cache = tmp_path / "xdg" / "robolearn" / "aot"
    args = [*TASK, "--checkpoint", runs / "flow", "--episodes", 1, "--seed", 3, "--json"]
    process = ["--inference", "async", "--backend", "process", "--realtime", "--fps", "40"]
    cold = last_json(run("deploy", *args, *process).output)
    warm = last_json(run("deploy", *args, *process).output)
    inline = last_json(run("deploy", *args).output)
    eager = last_json(deploy(*args).output)
    compiled = bool(shutil.which("g++") or shutil.which("c++") or shutil.which("clang++"))
    for out in (cold, warm, inline):
        assert out["compile"]["enabled"] and out["compile"]["compiled"] is compiled
        assert out["per_episode"][0]["steps"] == 12
    if compiled:
        assert list(cache.glob("*.pt2")) and warm["process"]["load_s"] < cold["process"]["load_s"]
    assert inline["per_episode"][0]["reward"] == pytest.approx(eager["per_episode"][0]["reward"], rel=1e-3, abs=1e-3)


@pytest.mark.slow
def test_a_trained_reach_policy_deploys_as_well_as_it_evaluates(tmp_path):
    """A reach policy that works (~40 s of training): sync deploy at D = 0 succeeds as often as eval on the same
    seeds, and async deploy with 2 ticks of latency (naive and RTC) keeps succeeding."""
    task = ["task=mujoco-reach", "task.env_kwargs.cameras=[]"]
    run("collect", *task, "--episodes", 30, "--out", tmp_path / "reach.zarr", "--json")
    run("train", *task, "policy=flow", "model.down_dims=[32,64]", "model.diffusion_step_embed_dim=32",
        "model.horizon=8", "model.n_action_steps=4", "model.num_inference_steps=4", "train.steps=600",
        "train.batch_size=64", "train.val_ratio=0", "train.lr=0.001", "--store", tmp_path / "reach.zarr",
        "--out", tmp_path / "run", "--json")
    args = [*task, "--checkpoint", tmp_path / "run", "--episodes", 20, "--seed", 0, "--json"]
    ev = last_json(run("eval", *args, "--out", tmp_path / "eval").output)
    sync = last_json(deploy(*args, "--safety", "default").output)
    assert ev["success_rate"] >= 0.5 and sync["success_rate"] >= ev["success_rate"]
    for join in ("naive", "rtc"):
        late = last_json(deploy(*args, "--inference", "async", "--backend", "sim:2", "--join", join).output)
        assert late["success_rate"] >= ev["success_rate"] - 0.2, join


def test_takeover_with_a_scripted_keyboard_is_recorded_and_trains_dagger_style(runs, tmp_path, monkeypatch):
    """`--teleop`: t hands control to the keyboard at tick 3 and back at tick 9; the store marks exactly those
    ticks, the episode extra counts them, and `train data.intervention_weight=3` trains on it."""
    import json

    from robolearn.store import Store
    from robolearn.store.intervention import intervention_mask

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    script = tmp_path / "takeover.json"
    script.write_text(json.dumps({"device": "keyboard", "idle_ticks": 100, "events": [
        {"tick": 3, "key": "t"}, {"tick": 4, "key": "right", "do": "down"}, {"tick": 8, "key": "right", "do": "up"},
        {"tick": 9, "key": "t"}]}))
    out = last_json(deploy(*TASK, "--checkpoint", runs / "flow", "--episodes", 1, "--teleop", f"scripted:{script}",
                           "--out", tmp_path / "dagger.zarr", "--json").output)
    assert out["takeover"]["takeovers"] == 1 and out["takeover"]["handbacks"] == 1
    assert out["takeover"]["intervention_steps"] == 6 and out["per_episode"][0]["steps"] == 12
    store = Store.open(tmp_path / "dagger.zarr")
    assert np.flatnonzero(intervention_mask(store)).tolist() == [3, 4, 5, 6, 7, 8]
    assert store.episode_extra(0)["takeovers"] == 1 and store.episode_extra(0)["intervention_steps"] == 6
    commanded = store.read_all("action_commanded")
    assert np.abs(commanded[4] - commanded[3]).max() > 0.1  # the right arrow moved the target (tick 3: a hold)
    tr = last_json(run("train", *TASK, "policy=flow", *TINY, "train.steps=2", "data.intervention_weight=3",
                       "--store", tmp_path / "dagger.zarr", "--out", tmp_path / "dagger", "--json").output)
    assert tr["train_episodes"] == 1
    bad = deploy(*TASK, "--checkpoint", runs / "flow", "--takeover-key", "save", ok=False)
    assert bad.exit_code != 0 and "--takeover-key applies to --teleop DEVICE" in bad.output


def test_takeover_from_the_terminal_and_the_live_view(runs, tmp_path, monkeypatch, terminal):
    """A device without keys of its own (a leader arm's case): the live view's take-over button hands control to it
    at tick 3, t typed in deploy's terminal (a pty here) hands it back at tick 8, Enter there saves the episode at
    tick 10; the terminal is restored afterwards. Without a terminal or a live view such a device is refused."""
    import json
    import select
    import termios

    from robolearn.deploy import DeployConfig, deploy_checkpoint
    from robolearn.devices.teleop.scripted import ScriptedTeleop
    from robolearn.devices.terminal_keys import TerminalKeys
    from robolearn.errors import InvalidValueError
    from robolearn.store import Store
    from robolearn.store.intervention import intervention_mask
    from robolearn.view.live import LiveSession, LiveViewConfig

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setattr(ScriptedTeleop, "has_keys", False, raising=False)
    script = tmp_path / "idle.json"
    script.write_text(json.dumps({"device": "keyboard", "idle_ticks": 100, "events": []}))
    cfg = DeployConfig(inference="async", backend="sim:1", episodes=1, seed=5, max_steps=12, compile=False,
                       teleop=f"scripted:{script}")
    master, slave = terminal
    before = termios.tcgetattr(slave)
    monkeypatch.setattr(TerminalKeys, "for_stdin", classmethod(lambda cls: cls(slave)))
    live = LiveSession("deploy", fps=10, keys=("save", "discard", "rerecord", "quit", "takeover"))
    on_step = live.on_step

    def type_keys(rec):
        on_step(rec)
        frames = live.snapshot()["frames"]
        if frames == 3:
            live.press("take over")
        elif frames in (8, 10):
            os.write(master, b"t" if frames == 8 else b"\r")
            assert select.select([slave], [], [], 5)[0]  # readable before the next tick asks
    live.on_step = type_keys
    store = tmp_path / "keys.zarr"
    out = deploy_checkpoint(runs / "flow", cfg, env_kwargs={"cameras": []}, out=store, progress=False,
                            view=LiveViewConfig(port=0), live=live)
    assert out["takeover"]["takeovers"] == 1 and out["takeover"]["handbacks"] == 1
    assert out["per_episode"][0]["steps"] == 10 and out["episodes"] == 1
    s = Store.open(store)
    assert np.flatnonzero(intervention_mask(s)).tolist() == [3, 4, 5, 6, 7]
    assert s.episodes["status"].tolist() == [0]  # "ok": the operator saved it
    assert termios.tcgetattr(slave) == before

    monkeypatch.setattr(TerminalKeys, "for_stdin", classmethod(lambda cls: None))  # no terminal, no view
    with pytest.raises(InvalidValueError, match="has no key to take over with; run deploy in a terminal"):
        deploy_checkpoint(runs / "flow", cfg, env_kwargs={"cameras": []}, progress=False)
