"""Trainer state that makes a resumed run continue exactly: optimizer and scheduler, EMA, step,
position in the batch order, and every RNG. Tensors go to safetensors, the rest to JSON (no pickle)."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from robolearn.errors import MissingPathError

STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {"numpy": [np_state[0], np_state[1].tolist(), *map(lambda x: x if not isinstance(x, float) else float(x),
                                                               np_state[2:])],
            "python": [py_state[0], list(py_state[1]), py_state[2]]}
    return tensors, meta


def set_rng_state(tensors: dict, meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))
    p = meta["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def save_trainer_state(directory: Path, optimizer, scheduler, ema, position: dict) -> None:
    opt_t, opt_m = optimizer_to_flat(optimizer)
    rng_t, rng_m = rng_state()
    tensors = {**opt_t, **rng_t}
    meta = {"optimizer": opt_m, "scheduler": scheduler.state_dict(), "rng": rng_m, **position,
            "ema_step": ema.step if ema else None}
    save_file(tensors, str(directory / STATE_TENSORS))
    (directory / STATE_JSON).write_text(json.dumps(meta))


def load_trainer_state(directory: Path) -> tuple[dict, dict]:
    for name in (STATE_TENSORS, STATE_JSON):
        if not (directory / name).is_file():
            raise MissingPathError(f"cannot resume from {directory}: {name} is missing")
    return load_file(str(directory / STATE_TENSORS)), json.loads((directory / STATE_JSON).read_text())


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a fully written checkpoint folder into place (the old one stays until the new one is whole). The old
    one is first moved into a fresh mkdtemp holder beside it, so nothing but it is ever deleted."""
    if not final.exists():
        os.replace(tmp, final)
        return
    holder = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
    os.replace(final, holder / final.name)
    os.replace(tmp, final)
    shutil.rmtree(holder, ignore_errors=True)  # ours alone: created by mkdtemp above
