"""Typed configs: dataclasses beside the code they configure, YAML presets under configs/ that only set
values, and `a.b=value` overrides from the command line. Unknown keys are errors, never ignored."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from robolearn.errors import ConfigError


def configs_dir() -> Path:
    """The presets folder: $ROBOLEARN_CONFIGS, else configs/ beside the robolearn package (the checkout)."""
    env = os.environ.get("ROBOLEARN_CONFIGS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "configs"


def load_preset(group: str, name: str) -> dict:
    """configs/<group>/<name>.yaml as a dict; a missing preset lists the ones that exist."""
    path = configs_dir() / group / f"{name}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in (configs_dir() / group).glob("*.yaml"))
        raise ConfigError(f"no {group} preset {name!r} (looked for {path}); available: {', '.join(have) or 'none'}")
    return yaml.safe_load(path.read_text()) or {}


def merge(base: dict, update: dict) -> dict:
    """Recursive dict merge; `update` wins."""
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. train.steps=2000)")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw) if raw != "" else ""


def set_dotted(d: dict, keys: list[str], value: Any) -> dict:
    cur = d
    for k in keys[:-1]:
        cur = cur.setdefault(k, {})
        if not isinstance(cur, dict):
            raise ConfigError(f"cannot set {'.'.join(keys)}: {k!r} is a value, not a section")
    cur[keys[-1]] = value
    return d


def _coerce(tp, value, where: str):
    origin = typing.get_origin(tp)
    if tp is Any or value is None:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a section (mapping), got {value!r}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        seq = [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(seq) if origin is tuple else seq
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def from_dict(cls, data: dict, where: str = ""):
    """Build dataclass `cls` from a mapping, strictly: unknown keys and ill-typed values raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown config key {key!r}; {cls.__name__} accepts: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)
