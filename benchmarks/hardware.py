"""Servo-arm speed and reliability against the emulators (issue #9's targets), each emulator in its own process
pinned to its own core, the host (this process) to another:

- ``cycle``: a sync read of Present_Position + a sync write of Goal_Position on the 6 servos of an SO-101
  follower (Feetech STS3215) and a Koch follower (Dynamixel XL430/XL330), through the vendor SDK (and our own
  codec), against the modelled wire time at 1 Mbps (request + 6 replies + the write, 10 bits a byte, no return
  delay). Target: within the modelled wire time + 1 ms.
- ``loop60``: the emulated SO-101 (``port: emulate``: follower on its MuJoCo twin, leader) with two 30 fps
  synthetic cameras (480x640) in `record_robot`'s session at 60 Hz, nothing written (``--no-record``).
  Target: 0 missed ticks.
- ``unplug``: every servo of the bus unplugged (a cable pulled), and the emulator killed (the USB adapter
  pulled: its pty closes): time until the bus raises, at the default `RetryBudget` (3 retries within 150 ms)
  and a 1 ms / 16 ms serial latency timer. Target: detected within 100 ms.
- ``watchdog``: a driver holding torque killed with SIGKILL: time until the emulated Dynamixel servos' bus
  watchdog (100 ms) trips and stops them. Target: within the configured time.
- ``soak``: 1 % dropped + 1 % corrupted replies on the SO-101 bus, read + write cycles for ``--soak-minutes``
  at the default retry budget (or ``--soak-budget``). Target: no abort (no transaction exhausts the budget),
  retries counted.

    nice -n 10 .venv/bin/python benchmarks/hardware.py                 # -> benchmarks/results/hardware.json
    .venv/bin/python benchmarks/hardware.py --only cycle,unplug --cycles 200 --out /tmp/hardware.json

Results keep the machine (benchmarks/machine.py) and the load average around each part: this 2-core machine is
shared, so a loaded run's misses say little about the code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.machine import machine  # noqa: E402
from robolearn_hardware.arms import KOCH_FOLLOWER, SO101_FOLLOWER  # noqa: E402
from robolearn_hardware.bus import MotorNotRespondingError, RetryBudget, ServoBus  # noqa: E402
from robolearn_hardware.emulators import EmulatorProcess, FaultConfig  # noqa: E402
from robolearn_hardware.emulators.bus import wire_s  # noqa: E402
from robolearn_hardware.protocol import dynamixel, feetech  # noqa: E402

BAUD = 1_000_000
HOST_CPU, EMULATOR_CPU = 0, 1
ARMS = {"so101": SO101_FOLLOWER, "koch": KOCH_FOLLOWER}
PATIENT = RetryBudget(retries=200, within_s=3.0)
"""For setting up a measurement on a loaded machine (an emulator descheduled for a while is not the fault)."""


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def pin(pid: int, cpu: int) -> list[int] | None:
    """Pin `pid` to `cpu` when the machine has it; the CPUs it may run on after."""
    if cpu >= (os.cpu_count() or 1):
        return None
    os.sched_setaffinity(pid, {cpu})
    return sorted(os.sched_getaffinity(pid))


def start(spec, faults: FaultConfig | None = None) -> EmulatorProcess:
    ids = [m.id for _, m in spec.motors]
    emu = EmulatorProcess(spec.protocol, [m.model for _, m in spec.motors], ids, return_delay_us=0, baud=BAUD,
                          faults=faults).start()
    pin(emu.pid, EMULATOR_CPU)
    return emu


def modelled_wire_s(spec) -> float:
    """Request + replies of a sync read of Present_Position and a sync write of Goal_Position, on the wire."""
    motors = [m for _, m in spec.motors]
    ids = [m.id for m in motors]
    reg = motors[0].spec.table
    pos, goal = reg["Present_Position"], reg["Goal_Position"]
    codec = dynamixel if spec.protocol == "dynamixel" else feetech
    request = codec.sync_read(pos.address, pos.size, ids)
    replies = sum(len(codec.encode_status(i, 0, bytes(pos.size))) for i in ids)
    write = codec.sync_write(goal.address, goal.size, {i: bytes(goal.size) for i in ids})
    return wire_s(len(request) + replies + len(write), BAUD)


def cycle(arm: str, backend: str, cycles: int) -> dict:
    spec = ARMS[arm]
    emu = start(spec)
    try:
        bus = ServoBus(emu.port, dict(spec.motors), backend=backend, retry=PATIENT, watchdog_s=None)
        bus.connect()
        try:
            goals = {n: 2048 for n in bus.motors}
            for _ in range(50):  # warm up
                bus.sync_read("Present_Position")
                bus.sync_write("Goal_Position", goals)
            dt = np.empty(cycles)
            for k in range(cycles):
                goals = {n: 2048 + (k % 200) for n in bus.motors}
                t0 = time.perf_counter()
                bus.sync_read("Present_Position")
                bus.sync_write("Goal_Position", goals)
                dt[k] = time.perf_counter() - t0
            stats = bus.stats.as_dict()
        finally:
            bus.disconnect()
    finally:
        emu.stop()
    wire = modelled_wire_s(spec)
    ms = dt * 1e3
    p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
    return {"arm": arm, "protocol": spec.protocol, "backend": backend, "cycles": cycles,
            "wire_ms": round(wire * 1e3, 3), "target_ms": round(wire * 1e3 + 1.0, 3),
            "p50_ms": round(p50, 3), "p90_ms": round(float(np.percentile(ms, 90)), 3), "p99_ms": round(p99, 3),
            "max_ms": round(float(ms.max()), 3), "within_target_fraction": float(np.mean(ms <= wire * 1e3 + 1.0)),
            "p50_within_target": p50 <= wire * 1e3 + 1.0, "retries": stats["retries"], "failures": stats["failures"]}


def unplug(arm: str, latency_ms: float, trials: int) -> dict:
    """Time from the fault to the bus raising: all servos silent, then the emulator killed (its pty closes)."""
    spec = ARMS[arm]
    silent, killed, errors = [], [], set()
    for _ in range(trials):
        emu = start(spec)
        try:
            bus = ServoBus(emu.port, dict(spec.motors), retry=PATIENT, latency_timer_ms=latency_ms, watchdog_s=None)
            bus.connect()
            try:
                bus.sync_read("Present_Position")
                bus.retry = RetryBudget()  # the budget under test, from the fault on
                emu.set_faults(FaultConfig(unplugged=tuple(m.id for _, m in spec.motors)))
                t0 = time.perf_counter()
                try:
                    bus.sync_read("Present_Position")
                except MotorNotRespondingError:
                    silent.append(time.perf_counter() - t0)
                emu.set_faults(FaultConfig())
                bus.retry = PATIENT
                bus.sync_read("Present_Position")
                bus.retry = RetryBudget()
                os.kill(emu.pid, signal.SIGKILL)
                emu.proc.wait(5)
                t0 = time.perf_counter()
                try:
                    for _ in range(100):
                        bus.sync_read("Present_Position")
                except OSError as e:  # MotorNotRespondingError or the port's own I/O error
                    killed.append(time.perf_counter() - t0)
                    errors.add(type(e).__name__)
            finally:
                try:
                    bus.disconnect()
                except OSError:
                    pass
        finally:
            emu.stop()

    def summary(values: list[float]) -> dict:
        ms = np.asarray(values) * 1e3
        return {"n": len(values), "p50_ms": round(float(np.median(ms)), 2), "max_ms": round(float(ms.max()), 2),
                "within_100ms": int(np.sum(ms <= 100.0))} if len(values) else {"n": 0}

    return {"arm": arm, "latency_timer_ms": latency_ms, "retry_budget": {"retries": 3, "within_s": 0.15},
            "trials": trials, "all_servos_silent": summary(silent), "emulator_killed": summary(killed),
            "killed_errors": sorted(errors)}


WATCHDOG_CLIENT = """
import sys, time
from robolearn_hardware.bus import Motor, RetryBudget, ServoBus
bus = ServoBus(sys.argv[1], {"a": Motor(1, "xl330-m288"), "b": Motor(2, "xl330-m288")}, watchdog_s=float(sys.argv[2]),
               retry=RetryBudget(200, 3.0))
bus.connect()
for n in bus.motors:
    bus.write("Profile_Velocity", n, 20)
bus.enable_torque()
bus.sync_write("Goal_Position", {"a": 4000, "b": 100})
print("moving", flush=True)
while True:
    bus.sync_read("Present_Position")
    time.sleep(0.005)
"""


def watchdog(trials: int, watchdog_s: float = 0.1) -> dict:
    """A driver holding torque and feeding the bus is killed with SIGKILL: time until the servo stops (its bus
    watchdog trips: Bus_Watchdog reads -1), polled through the emulator's control channel every ~2 ms."""
    import select
    import subprocess

    times = []
    for _ in range(trials):
        emu = EmulatorProcess("dynamixel", "xl330-m288", [1, 2], return_delay_us=0).start()
        pin(emu.pid, EMULATOR_CPU)
        proc = subprocess.Popen([sys.executable, "-c", WATCHDOG_CLIENT, emu.port, str(watchdog_s)],
                                stdout=subprocess.PIPE)
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 30.0)
            assert ready and proc.stdout.readline().strip() == b"moving"
            time.sleep(0.2)
            os.kill(proc.pid, signal.SIGKILL)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.0:
                if emu.state(1)["registers"]["Bus_Watchdog"] == -1:
                    times.append(time.monotonic() - t0)
                    break
                time.sleep(0.002)
            proc.wait(5)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
            proc.stdout.close()
            emu.stop()
    ms = np.asarray(times) * 1e3
    return {"watchdog_s": watchdog_s, "trials": trials, "stopped": len(times),
            "p50_ms": round(float(np.median(ms)), 1) if len(ms) else None,
            "max_ms": round(float(ms.max()), 1) if len(ms) else None,
            "note": "from the kill signal to the first poll that finds the trip: the watchdog period plus the "
                    "poll interval; the servo stops holding its goal at the trip (test_bus_watchdog.py)"}


def soak(minutes: float, budget: RetryBudget) -> dict:
    """Read + write cycles with 1 % dropped and 1 % corrupted replies. A transaction that exhausts `budget` is
    what would abort a recording: counted (with the first message), and the soak goes on to count them all."""
    spec = SO101_FOLLOWER
    emu = start(spec, FaultConfig(drop_rate=0.01, corrupt_rate=0.01, seed=3))
    first_failure, cycles, t0 = None, 0, time.monotonic()
    try:
        bus = ServoBus(emu.port, dict(spec.motors), retry=PATIENT, watchdog_s=None)
        bus.connect()
        bus.retry = budget
        try:
            deadline = t0 + minutes * 60
            while time.monotonic() < deadline:
                try:
                    bus.sync_read("Present_Position")
                    bus.sync_write("Goal_Position", {n: 2048 + int(200 * np.sin(cycles / 50)) for n in bus.motors})
                except MotorNotRespondingError as e:
                    first_failure = first_failure or str(e)
                cycles += 1
        finally:
            stats = bus.stats.as_dict()
            bus.retry = PATIENT
            bus.disconnect()
        injected = emu.command("stats")
    finally:
        emu.stop()
    injected.pop("ok", None)
    return {"minutes": round((time.monotonic() - t0) / 60, 2), "cycles": cycles, "aborts": stats["failures"],
            "first_abort": first_failure, "retry_budget": {"retries": budget.retries, "within_s": budget.within_s},
            "bus": stats, "emulator": injected}


def loop60(seconds: float, size: tuple[int, int], max_age_s: float = 0.1) -> dict:
    """record_robot's session on the emulated SO-101 at 60 Hz with two 30 fps cameras, nothing recorded."""
    from robolearn.devices.robot_config import load_robot_config
    from robolearn.record.robot import RecordingAborted, record_robot

    me = os.getpid()
    stop = threading.Event()
    pinned: dict[int, list[int] | None] = {}

    def pin_children():  # each emulator process starts inside the arms' connect(): pin it once it exists
        while not stop.is_set():
            for task in Path(f"/proc/{me}/task").iterdir():
                try:
                    kids = (task / "children").read_text().split()
                except OSError:
                    continue
                for pid in map(int, kids):
                    if pid not in pinned:
                        try:
                            pinned[pid] = pin(pid, EMULATOR_CPU)
                        except OSError:
                            pass
            stop.wait(0.01)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ROBOLEARN_EMULATED_CALIBRATION"] = tmp
        cfg = load_robot_config("so101-emulated")
        cam = {"device": "synthetic-camera", "fps": 30, "max_age_s": max_age_s, "kwargs": {"size": list(size)}}
        raw = cfg.to_json()
        raw["cameras"] = [{"name": "front", **cam}, {"name": "wrist", **cam}]
        path = Path(tmp) / "so101-2cam.yaml"
        import yaml

        path.write_text(yaml.safe_dump({"robot": raw}))
        cfg = load_robot_config(str(path))
        watcher = threading.Thread(target=pin_children, daemon=True)
        watcher.start()
        aborted = None
        try:
            summary = record_robot(cfg, None, record=False, episodes=1, fps=60, episode_s=seconds, reset_s=0,
                                   progress=False)
        except RecordingAborted as e:  # the shipped config's default retry budget ran out under load
            summary, aborted = e.summary, str(e)
        finally:
            stop.set()
            watcher.join()
    ticks = round(seconds * 60)
    return {"fps": 60, "seconds": seconds, "ticks": ticks, "camera_size": list(size), "camera_fps": 30,
            "max_age_s": max_age_s,
            "missed_ticks": summary["missed_ticks"], "held_ticks": summary["held_ticks"], "aborted": aborted,
            "cameras": summary["cameras"], "emulators_pinned": {str(k): v for k, v in pinned.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="cycle,unplug,watchdog,loop60,soak", help="Comma-separated parts to run.")
    ap.add_argument("--cycles", type=int, default=3000)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--loop-s", type=float, default=20.0)
    ap.add_argument("--max-age", type=float, default=0.1, help="loop60: the cameras' max_age_s (the shipped "
                                                               "configs' 0.1 by default).")
    ap.add_argument("--soak-minutes", type=float, default=10.0)
    ap.add_argument("--soak-budget", default="3,0.15", help="retries,within_s of the soak's RetryBudget "
                                                              "(default: RetryBudget()'s).")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "hardware.json"))
    args = ap.parse_args()
    parts = set(args.only.split(","))
    host = pin(os.getpid(), HOST_CPU)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}  # parts not run this time are kept
    result["machine"] = machine("numpy", "dynamixel-sdk", "feetech-servo-sdk", "mujoco", host_cpus=host,
                                emulator_cpu=EMULATOR_CPU, nice=os.nice(0))

    def record(name, fn):
        before = load()
        t0 = time.perf_counter()
        value = fn()
        result[name] = {"load_before": before, "load_after": load(), "seconds": round(time.perf_counter() - t0, 1),
                        "results": value}
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(out)
        print(name, json.dumps(value), flush=True)

    if "cycle" in parts:
        record("cycle", lambda: [cycle(a, b, args.cycles) for a in ARMS for b in ("sdk", "own")])
    if "unplug" in parts:
        record("unplug", lambda: [unplug(a, lat, args.trials) for a in ARMS for lat in (1.0, 16.0)])
    if "watchdog" in parts:
        record("watchdog", lambda: watchdog(args.trials))
    if "loop60" in parts:
        name = "loop60" if args.max_age == 0.1 else f"loop60_max_age_{args.max_age}"
        record(name, lambda: loop60(args.loop_s, (480, 640), args.max_age))
    if "soak" in parts:
        retries, within_s = args.soak_budget.split(",")
        budget = RetryBudget(int(retries), float(within_s))
        name = "soak" if budget == RetryBudget() else f"soak_budget_{retries}_{within_s}"
        record(name, lambda: soak(args.soak_minutes, budget))


if __name__ == "__main__":
    main()
