"""The process backend with a scripted policy in the child (tests/runtime/process_policies.py): chunks delivered in
order with stamps on the one monotonic clock, submit never blocks on a busy child, a reset drops the old episode's
chunks, a policy exception and a dead child surface at poll, close() leaves no child behind (a busy one is killed
by its pid), the child runs on its own cores; RealtimeLoop pins, freezes and restores."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from robolearn.errors import CannotCompleteError, InvalidValueError
from robolearn.runtime.backends import ChunkRequest, InferenceBackend
from robolearn.runtime.process_backend import ProcessBackend, _describe_exit
from robolearn.runtime.rt import RT_SWITCH_INTERVAL_S, RealtimeLoop, split_cores, thread_env

FACTORY = "tests.runtime.process_policies:scripted"
LOOP_CPUS, INFERENCE_CPUS, NOTE = split_cores()


def request(seq: int, value: float = 1.0, size: int = 3) -> ChunkRequest:
    return ChunkRequest({"state": np.full((1, size), value, np.float32)}, tick=10 * seq, mark=4 * seq, seq=seq)


def poll_until(backend, n: int, timeout_s: float = 20.0) -> list:
    got, deadline = [], time.monotonic() + timeout_s
    while len(got) < n:
        assert time.monotonic() < deadline, f"{len(got)} of {n} results within {timeout_s} s"
        got += backend.poll()
        time.sleep(0.002)
    return got


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def backend():
    b = ProcessBackend(FACTORY, {"latency_s": {"*": 0.01, "5": 1.0}}, seed=7, cpus=INFERENCE_CPUS)
    yield b
    b.close()


def test_chunks_arrive_in_order_with_stamps_on_one_clock(backend):
    assert isinstance(backend, InferenceBackend) and backend.info["policy"] == "Scripted"
    assert backend.info["pid"] == backend.pid != os.getpid() and backend.ready_s > 0
    t0 = time.monotonic_ns()
    for seq in range(3):
        backend.submit(request(seq, value=seq + 1))
    assert backend.pending == 3
    results = poll_until(backend, 3)
    assert [r.request.seq for r in results] == [0, 1, 2] and backend.pending == 0
    for r in results:
        seq = r.request.seq
        assert r.chunk.shape == (8, 4) and r.chunk.dtype == np.float32
        assert np.all(r.chunk[:, 0] == seq) and np.all(r.chunk[:, 1] == np.arange(8))
        assert np.all(r.chunk[:, 2] == 3 * (seq + 1)) and np.all(r.chunk[:, 3] == 7)  # its obs, the first seed
        assert r.request.tick == 10 * seq and r.request.mark == 4 * seq
        # the child's stamps (CLOCK_MONOTONIC) fall between the parent's submit and poll
        assert t0 <= r.t_request <= r.t_infer_start <= r.t_infer_end <= r.t_delivered <= time.monotonic_ns()
        assert r.inference_s >= 0.01


def test_submit_never_blocks_on_a_busy_child(backend):
    """Request 5 sleeps 1 s in the child; then 4 observations of 1 MB each (more than the socket buffer takes)
    are submitted and polled while it sleeps: none of these calls waits for the child."""
    backend.reset(seed=8)
    backend.submit(request(5))
    t0 = time.monotonic()
    for seq in range(6, 10):
        backend.submit(request(seq, size=250_000))
        assert backend.poll() == []
    assert time.monotonic() - t0 < 0.9  # the child is still inside request 5
    results = poll_until(backend, 5)
    assert [r.request.seq for r in results] == [5, 6, 7, 8, 9]
    assert all(np.all(r.chunk[:, 3] == 8) for r in results)
    assert results[0].inference_s >= 1.0 and all(np.all(r.chunk[:, 2] == 250_000) for r in results[1:])


def test_reset_drops_the_old_episodes_chunks(backend):
    backend.reset(seed=1)
    backend.submit(request(5))  # 1 s in the child, then answered into the old episode
    time.sleep(0.05)
    backend.reset(seed=2)
    backend.submit(request(0))
    results = poll_until(backend, 1)
    time.sleep(0.05)
    results += backend.poll()
    assert [r.request.seq for r in results] == [0] and np.all(results[0].chunk[:, 3] == 2)
    assert backend.counts["dropped_stale"] >= 1


@pytest.mark.skipif(INFERENCE_CPUS is None, reason=f"one core: {NOTE}")
def test_the_child_runs_on_the_inference_cores(backend):
    assert backend.info["cpus"] == sorted(INFERENCE_CPUS) and os.sched_getaffinity(backend.pid) == INFERENCE_CPUS
    assert LOOP_CPUS.isdisjoint(INFERENCE_CPUS)


def test_close_kills_a_busy_child_by_its_pid():
    b = ProcessBackend(FACTORY, {"latency_s": {"1": 60.0}})
    b.submit(request(1))
    time.sleep(0.1)
    t0 = time.monotonic()
    b.close(timeout=0.5)
    assert time.monotonic() - t0 < 5.0 and b.proc.returncode == -signal.SIGKILL and gone(b.pid)
    b.close()  # idempotent
    assert b.poll() == []
    with pytest.raises(RuntimeError, match="after close"):
        b.submit(request(1))


def test_a_policy_exception_and_a_dead_child_surface_at_poll():
    with ProcessBackend(FACTORY, {"raise_on": 1, "exit_on": 2}) as b:
        b.submit(request(0))
        b.submit(request(1))
        with pytest.raises(RuntimeError, match=r"failed on request 1: ValueError: scripted failure on request 1"):
            poll_until(b, 2)
        with pytest.raises(RuntimeError, match="failed on request 1"):  # it stays failed
            b.submit(request(3))
    assert gone(b.pid) and b.proc.returncode == 0  # it kept serving until closed, then exited cleanly
    with ProcessBackend(FACTORY, {"exit_on": 2}) as b:
        b.submit(request(2))
        with pytest.raises(RuntimeError, match=rf"inference process \(pid {b.pid}\) exited with code 3"):
            poll_until(b, 1)
    assert gone(b.pid)


def test_a_child_that_cannot_start_is_one_error():
    with pytest.raises(CannotCompleteError, match="could not start its policy: FileNotFoundError: scripted: no "
                                                  "checkpoint at /nowhere"):
        ProcessBackend(FACTORY, {"fail_start": True})
    with pytest.raises(InvalidValueError, match="is not 'package.module:function'"):
        ProcessBackend("tests.runtime.process_policies.scripted")
    with pytest.raises(InvalidValueError, match="JSON values"):
        ProcessBackend(FACTORY, {"latency_s": object()})
    assert _describe_exit(-9) == "was killed by SIGKILL" and _describe_exit(1) == "exited with code 1"


def test_thread_env_limits_native_pools():
    env = thread_env(2, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    with pytest.raises(InvalidValueError, match="threads must be >= 1"):
        thread_env(0)


def test_realtime_loop_pins_freezes_and_restores():
    before = os.sched_getaffinity(0)
    notes = []
    cpus = LOOP_CPUS or set(before)
    with RealtimeLoop(cpus, announce=notes.append) as rt:
        assert os.sched_getaffinity(0) == cpus
        rt.freeze_gc()
        assert gc.get_freeze_count() > 0 and rt.report()["gc_frozen"] and rt.report()["loop_cpus"] == sorted(cpus)
    assert os.sched_getaffinity(0) == before and gc.get_freeze_count() == 0 and notes == []


def test_sched_fifo_is_a_note_when_not_permitted_or_refused_when_required():
    policy, switch = os.sched_getscheduler(0), sys.getswitchinterval()
    notes = []
    with RealtimeLoop(None, rt_priority=10, announce=notes.append) as rt:
        permitted = rt.sched_fifo
        if permitted:
            reset = os.SCHED_RESET_ON_FORK
            assert os.sched_getscheduler(0) == os.SCHED_FIFO | reset
            # what the loop starts runs at normal priority: a thread, and a process (an inference child)
            seen = []
            worker = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
            worker.start()
            worker.join(5)
            child = subprocess.run([sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"],
                                   capture_output=True, text=True, timeout=30, check=True)
            assert seen == [os.SCHED_OTHER] and int(child.stdout) == os.SCHED_OTHER
            assert sys.getswitchinterval() == pytest.approx(RT_SWITCH_INTERVAL_S)  # a busy thread hands over the GIL in 0.2 ms
        else:
            assert len(notes) == 1 and "SCHED_FIFO priority 10 is not permitted" in notes[0]
            assert "normal priority" in notes[0] and os.sched_getscheduler(0) == policy
    assert os.sched_getscheduler(0) == policy and sys.getswitchinterval() == switch
    if not permitted:
        with pytest.raises(CannotCompleteError, match="drop --require-rt"):
            RealtimeLoop(None, rt_priority=10, require=True).__enter__()
    with pytest.raises(InvalidValueError, match="outside SCHED_FIFO's range; use 1..99"):
        RealtimeLoop(None, rt_priority=0)
