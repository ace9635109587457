"""UR5e driver against the emulated controller (issue #10 targets): servoJ streamed at 500 Hz with 0 missed
cycles at the emulator, and a missed watchdog kick -> protective stop reported within one RTDE period.

Stream: `URArm` (ur_rtde 1.6.5, servoJ; ``--pacing controller``: one command per controller cycle, sent when
that cycle's data package arrives; ``client``: ur_rtde's initPeriod/waitPeriod on this machine's clock) follows
a slow sine for ``--seconds``; the emulator (its own process, MuJoCo twin) counts servo cycles, cycles that
re-ran a stale command because no new package arrived before the cycle started (missed, what the real
control script does), packages overwritten before a cycle read them (lost) and its own late cycles (overruns).
Watchdog: ``--trials`` times, the emulator drops RTDE input packages; the controller acts at the start of its
first cycle after the deadline (last package + 1/watchdog_hz; 0..2 ms later: a 500 Hz loop acts only at its
cycles) and publishes the stopped script in that cycle's data package; the driver's streaming thread reports
it when that package arrives. Latencies on the shared monotonic clock: ``driver_report_ms`` from the deadline,
``driver_report_after_stop_ms`` from the start of the cycle that stopped the script.

Each missed cycle or lost package is listed in ``why`` with the kernel arrival stamps of the servo packages before
it and the emulator's own lateness; ``hypervisor_steal_ms`` is the CPU time the VM's host took from this machine
during the stream (/proc/stat): a vCPU stolen for longer than the slack in a cycle misses it whatever the code does.

Both processes run their loops at SCHED_FIFO ``--rt-priority`` where permitted (``--rt-priority 0``: normal).

    .venv/bin/python benchmarks/ur.py                          # -> benchmarks/results/ur.json
    .venv/bin/python benchmarks/ur.py --seconds 5 --trials 3 --out /tmp/ur.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.machine import machine, steal_s  # noqa: E402
from robolearn.spaces import STATE  # noqa: E402
from robolearn_hardware.ur import ur5e  # noqa: E402
from robolearn_hardware.ur.controller import SLACK_EDGES_MS  # noqa: E402
from robolearn_hardware.ur.process import UREmulatorProcess  # noqa: E402

PERIOD_S = 0.002


def stream(emu: UREmulatorProcess, seconds: float, rate_hz: float, **driver) -> dict:
    """Targets at ``rate_hz`` (a policy's rate); the driver streams them at 500 Hz."""
    with ur5e(emu.host, **driver) as arm:
        q0 = arm.read().values[STATE]
        before, c0 = emu.state(), dict(arm.counters)
        t0, stolen = time.monotonic(), steal_s()
        errors = []
        while (t := time.monotonic() - t0) < seconds:
            goal = q0 + 0.2 * np.sin(2 * np.pi * 0.25 * t) * np.array([1, 0.5, -0.5, 0.5, 0.5, 1], np.float32)
            arm.send_action(goal)
            errors.append(float(np.abs(arm.read().values[STATE] - goal).max()))
            time.sleep(1.0 / rate_hz)
        after, c1 = emu.state(), dict(arm.counters)
        stolen = steal_s() - stolen
        realtime = dict(arm.realtime or {}, rtde_sockets_no_delay=arm.rtde_sockets_no_delay)
    d = {k: after[k] - before[k] for k in ("servo_cycles", "missed_cycles", "missed_cycles_late_publish",
                                           "lost_packages", "overruns", "ticks")}
    # the misses the driver had half a period or more to prevent (the others followed the emulator's own stall)
    d["missed_cycles_driver"] = d["missed_cycles"] - d["missed_cycles_late_publish"]
    # how early each servo package came before the cycle that read it: the headroom left against a stall
    d["slack_ms"] = {"edges": list(SLACK_EDGES_MS),
                     "counts": [a - b for a, b in zip(after["slack_hist"], before["slack_hist"])]}
    return {"seconds": seconds, "policy_rate_hz": rate_hz, "emulator": d, "why": why_missed(after, t0),
            "hypervisor_steal_ms": round(stolen * 1e3, 1),
            "driver": {k: c1[k] - c0[k] for k in c1}, "tracking_error_rad_p95": float(np.percentile(errors, 95)),
            "pacing": driver["pacing"], "driver_realtime": realtime}


def why_missed(after: dict, t0: float) -> list[dict]:
    """Each missed cycle or lost package of a stream with what was around it (ms from the cycle's start): when
    the recent servo packages arrived (kernel stamps) and how late the emulator ran the cycle (its own stall)."""
    out = []
    for e in after["events"]:  # the controller's last 50 events (the monotonic clock is shared)
        if e["t"] >= t0 and e["kind"] in ("missed_cycle", "lost_package"):
            out.append({"kind": e["kind"],
                        "arrivals_ms": [round((a - e["t"]) * 1e3, 3) for a in e["arrivals"]],
                        "emulator_late_ms": None if e["run_at"] is None else round((e["run_at"] - e["t"]) * 1e3, 3),
                        "window_ms": None if e.get("window") is None else round(e["window"] * 1e3, 3)})
    return out


def watchdog(emu: UREmulatorProcess, trials: int, watchdog_hz: float, **driver) -> dict:
    emulator_ms, driver_ms, after_stop_ms, publish_ms = [], [], [], []
    with ur5e(emu.host, watchdog_hz=watchdog_hz, **driver) as arm:
        for _ in range(trials):
            time.sleep(0.3)
            until = emu.command("drop_inputs", seconds=3.0 / watchdog_hz)["until"]
            deadline = time.monotonic() + 5.0
            while arm.fault is None and time.monotonic() < deadline:
                time.sleep(0.001)
            trip = [e for e in emu.state()["events"] if e["kind"] == "watchdog_trip"][-1]
            emulator_ms.append((trip["t"] - trip["deadline"]) * 1e3)
            driver_ms.append((arm.fault.t_detected - trip["deadline"]) * 1e3)
            after_stop_ms.append((arm.fault.t_detected - trip["t"]) * 1e3)
            publish_ms.append((trip["t_published"] - trip["t"]) * 1e3)
            time.sleep(max(0.0, until - time.monotonic()) + 0.01)
            arm.clear_protective_stop()
    return {"trials": trials, "watchdog_hz": watchdog_hz, "rtde_period_ms": PERIOD_S * 1e3,
            "emulator_detect_ms": emulator_ms, "driver_report_ms": driver_ms,
            "driver_report_ms_max": max(driver_ms), "within_one_period": sum(x <= PERIOD_S * 1e3 for x in driver_ms),
            "driver_report_after_stop_ms": after_stop_ms, "driver_report_after_stop_ms_max": max(after_stop_ms),
            "within_one_period_after_stop": sum(x <= PERIOD_S * 1e3 for x in after_stop_ms),
            "emulator_publish_lag_ms": publish_ms}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=50.0, help="rate of new targets (a policy's rate)")
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--watchdog-hz", type=float, default=50.0)
    p.add_argument("--pacing", choices=["controller", "client"], default="controller",
                   help="the driver's stream: on the controller's cycles, or on ur_rtde's initPeriod/waitPeriod")
    p.add_argument("--rt-priority", type=int, default=80,
                   help="SCHED_FIFO priority of the emulator's cycle and the driver's stream where permitted (0: off)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "ur.json"))
    p.add_argument("--no-pin", action="store_true",
                   help="leave both processes unpinned (default: the emulator on the last CPU, the driver on the others)")
    args = p.parse_args()
    driver = {"pacing": args.pacing, "rt_priority": args.rt_priority or None}
    with UREmulatorProcess(unlock_delay_s=0.2, gripper=False, rt_priority=args.rt_priority or None) as emu:
        cpus = sorted(os.sched_getaffinity(0))
        pinned = None
        if not args.no_pin and len(cpus) >= 2:  # a real controller is its own machine: give it a core of its own
            os.sched_setaffinity(emu.pid, {cpus[-1]})
            os.sched_setaffinity(0, set(cpus[:-1]))
            pinned = {"emulator": [cpus[-1]], "driver": cpus[:-1]}
        result = {"stream": stream(emu, args.seconds, args.rate, **driver),
                  "watchdog": watchdog(emu, args.trials, args.watchdog_hz, **driver), "pinned": pinned,
                  "realtime": {"rt_priority": args.rt_priority or None, "emulator_sched_fifo": emu.sched_fifo}}
    result["machine"] = machine("ur-rtde", "mujoco", niceness=os.nice(0), loadavg=os.getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
