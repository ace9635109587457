"""Parser fuzzing: generated frames round-trip; garbage, truncation and bit flips are rejected with a reason.

1e4 generated cases run in make test; ``-m slow`` runs 1e6 (benchmarks/fuzz_servo_codecs.py records a run).
"""

import random

import pytest

from robolearn_hardware.protocol.fuzz import FuzzStats, flip_outcome, fuzz, random_frame

PROTOCOLS = ["dynamixel", "feetech"]


def _check(stats: FuzzStats, n: int) -> None:
    assert stats.failures == []
    assert stats.cases == n
    assert set(stats.counts) == {"valid", "stream", "random", "truncated", "bitflip"}
    assert stats.other_flips_accepted == 0
    assert stats.bitflips_rejected + stats.length_flips_accepted == stats.bitflips
    assert stats.max_pending <= 1024
    # Noise that forms a valid frame over the next real one: never with CRC-16, rare with an 8-bit sum.
    assert stats.stream_frames_lost_to_noise_frames <= (0 if stats.protocol == "dynamixel" else 0.001 * stats.counts["stream"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_fuzz_generated_frames(protocol):
    stats = fuzz(5_000, protocol, seed=11)  # 1e4 over both protocols
    _check(stats, 5_000)
    assert stats.max_case_s < 0.5  # no case hangs


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_single_bit_flip_of_a_valid_frame_is_rejected(protocol):
    """Every bit of 80 frames. The one hole no parser can close: a cleared length bit shortens a
    variable-length request (WRITE, SYNC_READ) to a prefix whose checksum matches by chance, 1 in 256 for
    Feetech's 8-bit sum (1 in 65536 for Dynamixel's CRC). Replies are checked against their request, so a
    host never accepts a flipped reply."""
    rng, stats = random.Random(5), FuzzStats(protocol)
    for _ in range(80):
        frame, direction, expect = random_frame(rng, protocol)
        for bit in range(8 * len(frame)):
            flip_outcome(protocol, frame, direction, expect, bit, stats)
    assert stats.failures == [] and stats.bitflips > 5_000
    assert stats.other_flips_accepted == 0
    assert stats.length_flips_accepted == (1 if protocol == "feetech" else 0)  # this seed; see docstring


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_fuzz_a_million_generated_frames(protocol):
    stats = fuzz(500_000, protocol, seed=2024)  # 1e6 over both protocols
    _check(stats, 500_000)
    # A shortened length whose prefix happens to pass the checksum: about 2^-8 (Feetech) or 2^-16 per
    # eligible flip, never a systematic hole.
    assert stats.length_flips_accepted <= 0.01 * stats.bitflips


def test_fuzz_benchmark_script_records_its_result(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_servo_codecs.py"
    out = tmp_path / "fuzz.json"
    run = subprocess.run([sys.executable, str(script), "--cases", "300", "--exhaustive", "3", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["passed"] and data["total_cases"] == 600
    assert data["protocols"]["feetech"]["exhaustive_bitflips"]["frames"] == 3
