"""Env helpers: conformance checks (gymnasium's `check_env` plus robolearn's feature-key rules)."""

from robolearn.env.checks import ConformanceError, check_env_conformance, check_observation, check_upright

__all__ = ["ConformanceError", "check_env_conformance", "check_observation", "check_upright"]
