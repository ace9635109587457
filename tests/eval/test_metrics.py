import math

import pytest

from robolearn.eval import wilson_interval


def wilson_reference(k, n, z=1.96):
    # Textbook form: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    p = k / n
    center = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (center - half) / (1 + z * z / n), (center + half) / (1 + z * z / n)


@pytest.mark.parametrize(
    "k, n, expected",
    [
        (8, 10, (0.4902, 0.9433)),
        (0, 10, (0.0, 0.2775)),
        (10, 10, (0.7225, 1.0)),
        (5, 10, (0.2366, 0.7634)),
        (50, 100, (0.4038, 0.5962)),
        (1, 1, (0.2065, 1.0)),
    ],
)
def test_known_values(k, n, expected):
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(expected[0], abs=1e-4)
    assert high == pytest.approx(expected[1], abs=1e-4)
    ref = wilson_reference(k, n)
    assert (low, high) == pytest.approx((max(0.0, ref[0]), min(1.0, ref[1])), abs=1e-12)


def test_symmetry_and_width():
    for n in (7, 20, 333):
        for k in range(n + 1):
            low, high = wilson_interval(k, n)
            mirrored = wilson_interval(n - k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0
            assert (low, high) == pytest.approx((1 - mirrored[1], 1 - mirrored[0]), abs=1e-12)
    assert wilson_interval(8, 10, z=2.576)[0] < wilson_interval(8, 10)[0]  # 99 % is wider


def test_no_episodes_means_no_information():
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("k, n", [(-1, 5), (6, 5), (0, -1)])
def test_rejects_impossible_counts(k, n):
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        wilson_interval(k, n)
