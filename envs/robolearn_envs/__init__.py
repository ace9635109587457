"""Simulated environments for robolearn (`gymnasium.make("robolearn/<family>-<task>")`)."""

from robolearn_envs.mujoco import register as _register_mujoco

_register_mujoco()
