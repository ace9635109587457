"""Success-rate statistics with honest uncertainty.

A success rate from a few dozen rollouts is a noisy estimate; report it with a confidence interval.
The Wilson score interval stays inside [0, 1] and behaves at 0/n and n/n, where the normal
approximation collapses to a zero-width interval.

Example::

    wilson_interval(8, 10)     # (0.490..., 0.943...)
"""

from __future__ import annotations

import math

__all__ = ["wilson_interval"]


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n``.

    ``z`` is the standard-normal quantile (1.96 for 95 %). With ``n == 0`` nothing is known and
    the interval is ``(0.0, 1.0)``.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got successes={successes}, n={n}")
    if z <= 0:
        raise ValueError(f"wilson_interval: z must be > 0, got {z}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n)) / denom
    # Clamp float error at the ends (e.g. 0/n gives a low bound of -1e-17).
    return (max(0.0, center - half), min(1.0, center + half))
