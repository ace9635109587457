"""robomimic hdf5 <-> robolearn store.

A robomimic file (what robomimic's conversion scripts write and its SequenceDataset reads):

```
data                attrs: total (frames), env_args (JSON: env_name, type, env_kwargs)
  demo_<i>          attrs: num_samples; i sorts numerically (demo_2 before demo_10)
    obs/<key>       (T, ...) per-step observations: <camera>_image (T, H, W, 3) uint8, low-dim (T, D)
    actions (T, Da), rewards (T,), dones (T,), states (T, S) MuJoCo states, next_obs/ (optional)
mask/<filter>       demo names of a split (train, valid, ...)
```

Import: `<camera>_image` -> `images/<camera>`, `<camera>_depth` -> `depth/<camera>`, `actions` -> `action`,
`rewards` -> `reward` (T, 1). The low-dim obs keys are concatenated into `state`, in this order:
first those of robomimic's default low-dim observation set that are present (`STATE_FIRST`), then every
other low-dim key in alphabetical order; `attrs["state_layout"]` holds `[name, start, stop]` for each, so
`state[:, start:stop]` is `obs/<name>`. Values keep their dtype (robomimic's float64 stays float64: exact).
fps is `env_args.env_kwargs.control_freq`, else `data.attrs["fps"]` (written by the export here), else
robosuite's default 20 Hz. The task is the demo's language instruction when the file has one (`ep_meta`
JSON attr, key `lang`), else the env name. `dones` (as the steps where done == 1), demo names and filter
masks go to `attrs["robomimic"]`; `states`, `next_obs` (obs shifted by one step) and `action_dict` are not
imported (the store has no key for them).

Export writes that layout back (obs split by `state_layout`, gzip-compressed), with `num_samples`, `total`
and `env_args`; dones come from the import when there was one, else 1 at each episode's last step. A task
other than the env name goes to the demo's `ep_meta` attr as `{"lang": task}` (robocasa's convention).
`force` and `tactile/*` are not exported. A store that did not come from robomimic gets
`env_args = {"env_name": <env_id or first task>, "type": 2, "env_kwargs": {}}` and demos demo_0, demo_1, ...
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from robolearn.store.staging import staged
from robolearn.store.layout import EpisodeMeta, Feature, StoreError
from robolearn.store.reader import Store
from robolearn.store.writer import StoreWriter

STATE_FIRST = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")
ROBOSUITE_HZ = 20.0  # robosuite's default control_freq, used when env_args does not set one
DEMO = re.compile(r"^demo_(\d+)$")
SKIPPED = {"states": "MuJoCo simulator states: the store has no key for them",
           "next_obs": "the next step's observations, the same as obs shifted by one step",
           "action_dict": "per-part action views; `actions` is imported"}


def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is in the interop extra
        raise StoreError("robomimic import/export needs h5py: pip install 'robolearn[interop]'") from e
    return h5py


def _open(src: Path):
    h5py = _h5py()
    if not src.is_file():
        raise StoreError(f"{src} is not a file: a robomimic dataset is one .hdf5 file")
    try:
        f = h5py.File(src, "r")
    except OSError as e:
        raise StoreError(f"{src} is not an HDF5 file, so not a robomimic dataset") from e
    if "data" not in f or not isinstance(f["data"], h5py.Group):
        f.close()
        raise StoreError(f"{src} is not a robomimic dataset: it has no 'data' group of demos")
    return f


def demo_names(data) -> list[str]:
    """demo_<i> keys in numeric order (robomimic sorts by int(key[5:]))."""
    names = sorted((k for k in data if DEMO.match(k)), key=lambda k: int(DEMO.match(k).group(1)))
    if not names:
        raise StoreError(f"{data.file.filename} has no data/demo_<i> groups")
    return names


def _plan_obs(obs) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """(obs key -> image/depth store key, low-dim keys in state order, skipped obs key -> why)."""
    cams, lowdim, skipped = {}, [], {}
    for k in obs:
        shape, dtype = obs[k].shape, obs[k].dtype
        if k.endswith("_image") and len(shape) == 4 and shape[-1] == 3 and dtype == np.uint8:
            cams[k] = f"images/{k[:-len('_image')]}"
        elif k.endswith("_depth") and len(shape) == 4:
            cams[k] = f"depth/{k[:-len('_depth')]}"
        elif len(shape) in (1, 2) and dtype.kind in "fiub":
            lowdim.append(k)
        else:
            skipped[f"obs/{k}"] = f"shape {list(shape[1:])} {dtype} is neither a camera nor a low-dim vector"
    order = [k for k in STATE_FIRST if k in lowdim] + sorted(k for k in lowdim if k not in STATE_FIRST)
    return cams, order, skipped


def _task(demo, env_name: str) -> str:
    meta = demo.attrs.get("ep_meta")
    if meta is not None:
        try:
            lang = json.loads(meta).get("lang")
        except (ValueError, AttributeError):
            lang = None
        if lang:
            return str(lang)
    return env_name


def import_robomimic(src: str | Path, store: str | Path, overwrite: bool = False) -> dict:
    """Write every demo of the robomimic file `src` into a new store at `store` (with `overwrite`, one that
    replaces a robolearn store there); return a summary."""
    src = Path(src)
    with _open(src) as f:
        data = f["data"]
        demos = demo_names(data)
        try:
            env_args = json.loads(data.attrs.get("env_args", "{}"))
        except ValueError as e:
            raise StoreError(f"{src}: data.attrs['env_args'] is not valid JSON: {e}") from e
        env_name = str(env_args.get("env_name", ""))
        fps = float((env_args.get("env_kwargs") or {}).get("control_freq") or data.attrs.get("fps") or ROBOSUITE_HZ)
        first = data[demos[0]]
        if "obs" not in first or "actions" not in first:
            raise StoreError(f"{src}: data/{demos[0]} lacks 'obs' or 'actions'; not a robomimic training file")
        cams, state_keys, skipped = _plan_obs(first["obs"])
        layout, start = [], 0
        for k in state_keys:
            width = int(np.prod(first["obs"][k].shape[1:]))
            layout.append([k, start, start + width])
            start += width
        features = {key: Feature(tuple(first["obs"][k].shape[1:]), first["obs"][k].dtype.name)
                    for k, key in cams.items()}
        if state_keys:
            dtype = np.result_type(*[first["obs"][k].dtype for k in state_keys])
            features["state"] = Feature((start,), np.dtype(dtype).name)
        features["action"] = Feature(tuple(first["actions"].shape[1:]), first["actions"].dtype.name)
        has_rewards = "rewards" in first
        if has_rewards:
            features["reward"] = Feature((1,), first["rewards"].dtype.name)
        dones, masks = {}, {}
        for name in demos:
            if "dones" in data[name]:
                dones[name] = np.flatnonzero(np.asarray(data[name]["dones"][()]).reshape(-1)).tolist()
        if "mask" in f:
            for k in f["mask"]:
                masks[k] = [m.decode() if isinstance(m, bytes) else str(m) for m in f["mask"][k][()]]
        skipped.update({k: why for k, why in SKIPPED.items() if k in first})
        robots = (env_args.get("env_kwargs") or {}).get("robots")
        attrs = {"source_format": "robomimic_hdf5", "source_path": str(src.resolve()), "env_args": env_args,
                 "state_layout": layout, "robot_type": "+".join(robots) if isinstance(robots, list) else robots,
                 "skipped_features": skipped,
                 "robomimic": {"demos": demos, "dones": dones, "masks": masks,
                               "obs_dtypes": {k: first["obs"][k].dtype.name for k in state_keys}}}
        frames_total = 0
        with staged(store, kind="store", overwrite=overwrite) as tmp, StoreWriter(tmp, features, fps, attrs=attrs) as writer:
            for name in demos:
                demo = data[name]
                n = int(demo.attrs.get("num_samples", len(demo["actions"])))
                missing = [k for k in [*cams, *state_keys] if k not in demo["obs"]]
                if missing:
                    raise StoreError(f"{src}: data/{name}/obs lacks {missing[0]!r}, which data/{demos[0]} has")
                frames = {key: demo["obs"][k][()] for k, key in cams.items()}
                parts = {f"obs/{k}": np.asarray(demo["obs"][k][()]) for k in state_keys}
                frames["action"] = demo["actions"][()]
                if has_rewards:
                    frames["reward"] = np.asarray(demo["rewards"][()]).reshape(-1, 1)
                lengths = {k: len(v) for k, v in {**frames, **parts}.items()}
                if set(lengths.values()) != {n}:
                    raise StoreError(f"{src}: data/{name} has num_samples {n} but arrays of lengths {lengths}")
                if state_keys:
                    frames["state"] = np.concatenate(
                        [v.reshape(n, -1).astype(features["state"].dtype) for v in parts.values()], axis=1)
                writer.add_episode(frames, None, EpisodeMeta(task=_task(demo, env_name), declared_fps=fps,
                                                             source=f"robomimic:{src.resolve()}"))
                frames_total += n
    return {"format": "robomimic", "source": str(src), "store": str(store), "episodes": len(demos),
            "frames": frames_total, "fps": fps, "keys": sorted(features), "env_name": env_name,
            "state_layout": layout, "skipped": skipped}


def export_robomimic(store: str | Path, dst: str | Path) -> dict:
    """Write the store at `store` as a robomimic hdf5 file `dst`; return a summary."""
    h5py = _h5py()
    s = Store.open(store)
    if s.n_episodes == 0:
        raise StoreError(f"store {store} has no committed episodes to export")
    rm = s.info.get("robomimic") or {}
    names = list(rm.get("demos") or [])
    if len(names) != s.n_episodes:
        names = [f"demo_{i}" for i in range(s.n_episodes)]
    layout = s.info.get("state_layout") or ([["state", 0, s.features["state"].shape[0]]] if "state" in s.features
                                            else [])
    obs_dtypes = rm.get("obs_dtypes") or {}
    env_args = s.info.get("env_args") or {"env_name": s.info.get("env_id") or (s.tasks[0] if s.tasks else ""),
                                          "type": 2, "env_kwargs": {}}
    skipped = {k: "not exported: robomimic files have no standard obs key for it" for k in s.features
               if k == "force" or k.startswith("tactile/")}
    suffix = {"images/": "_image", "depth/": "_depth"}
    total = 0
    with staged(dst) as tmp:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            for e, name in enumerate(names):
                ep = s.episode(e)
                n = len(ep["action"])
                g = data.create_group(name)
                obs = g.create_group("obs")
                for k, start, stop in layout:
                    v = ep["state"][:, start:stop].astype(obs_dtypes.get(k, s.features["state"].dtype))
                    obs.create_dataset(k, data=v, compression="gzip")
                for key, v in ep.items():
                    prefix = next((p for p in suffix if key.startswith(p)), None)
                    if prefix:
                        obs.create_dataset(key[len(prefix):] + suffix[prefix], data=v, compression="gzip")
                g.create_dataset("actions", data=ep["action"])
                rewards = ep["reward"].reshape(n) if "reward" in ep else np.zeros(n)
                g.create_dataset("rewards", data=rewards)
                done_at = (rm.get("dones") or {}).get(name, [n - 1])
                dones = np.zeros(n, np.int64)
                dones[[t for t in done_at if t < n]] = 1
                g.create_dataset("dones", data=dones)
                g.attrs["num_samples"] = n
                if s.task(e) and s.task(e) != env_args.get("env_name"):
                    g.attrs["ep_meta"] = json.dumps({"lang": s.task(e)})
                total += n
            data.attrs["total"] = total
            data.attrs["env_args"] = json.dumps(env_args, indent=4)
            data.attrs["fps"] = s.fps  # not a robomimic key; read back when env_args has no control_freq
            if rm.get("masks") and names == list(rm.get("demos") or []):
                mask = f.create_group("mask")
                for k, members in rm["masks"].items():
                    mask.create_dataset(k, data=np.array([m.encode() for m in members], dtype="S"))
    return {"format": "robomimic", "store": str(store), "destination": str(dst), "episodes": s.n_episodes,
            "frames": total, "demos": names, "obs": [k for k, _, _ in layout], "skipped": skipped}
