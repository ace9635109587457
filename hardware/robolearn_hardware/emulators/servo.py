"""Command line: an emulated servo bus on a pty, in its own process.

    python -m robolearn_hardware.emulators.servo --protocol dynamixel --model xl330 --ids 1,2,3
    {"port": "/dev/pts/7", "pid": 4242, ...}

The first line printed (JSON) names the port; open it like a serial device (any baud rate the servos are
set to, 1 Mbps by default). ``--link PATH`` also creates a symlink to the pty there. Faults: ``--drop``,
``--corrupt``, ``--late`` (rates), ``--late-ms``, ``--unplugged 2``, ``--overload 3``, ``--seed``.
``--control`` reads JSON-line commands on stdin and answers on stdout (see pty_server.Control); the
emulator then exits when stdin closes, so it never outlives the process that started it.

``--twin so101`` (or ``koch``) couples the servos, in id order, to that arm's simulated twin
(`robolearn_hardware.twins`): Present_Position comes from the twin's joint angles, Goal_Position drives its
joints, a torque-off joint is moved through the control channel (``set_shaft``, ``set_joint``). ``--positions``
then places the twin's joints (shaft ticks, as without a twin); without it the twin starts at its rest pose.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

from .bus import make_bus
from .faults import FaultConfig
from .pty_server import Control, PtyServer


def _ids(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"ids must be comma-separated integers like 1,2,3, got {text!r}") from None


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 2048,1000, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m robolearn_hardware.emulators.servo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", choices=["dynamixel", "feetech"], required=True)
    p.add_argument("--model", required=True,
                   help="xl330, xl330-m077, xl430 (dynamixel) or sts3215 (feetech); one for all ids or one per id, "
                        "comma-separated")
    p.add_argument("--ids", type=_ids, required=True, help="servo ids, e.g. 1,2,3")
    p.add_argument("--baud", type=int, default=1_000_000, help="baud rate the servos are set to")
    p.add_argument("--positions", type=_floats, default=None, help="start shaft positions in ticks, one per id")
    p.add_argument("--return-delay-us", type=int, default=None, help="Return_Delay_Time of every servo (µs)")
    p.add_argument("--drop", type=float, default=0.0, help="rate of dropped replies")
    p.add_argument("--corrupt", type=float, default=0.0, help="rate of replies with one bit flipped")
    p.add_argument("--late", type=float, default=0.0, help="rate of late replies")
    p.add_argument("--late-ms", type=float, default=100.0, help="delay of a late reply")
    p.add_argument("--fault-ids", type=_ids, default=(), help="apply drop/corrupt/late only to these ids")
    p.add_argument("--unplugged", type=_ids, default=(), help="ids that never answer")
    p.add_argument("--overload", type=_ids, default=(), help="ids whose joint is blocked (overload with torque on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--link", default=None, help="also expose the pty at this path (a symlink)")
    p.add_argument("--control", action="store_true", help="JSON-line control commands on stdin")
    p.add_argument("--twin", default=None, help="couple the servos to this arm's simulated twin (so101, koch)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        faults = FaultConfig(drop_rate=args.drop, corrupt_rate=args.corrupt, late_rate=args.late,
                             late_s=args.late_ms / 1000.0, unplugged=args.unplugged, overload=args.overload,
                             only_ids=args.fault_ids, seed=args.seed)
        models = [m.strip() for m in args.model.split(",")]
        bus = make_bus(args.protocol, models[0] if len(models) == 1 else models, list(args.ids), now=time.monotonic(), baud=args.baud,
                       positions=args.positions, return_delay_us=args.return_delay_us, faults=faults)
        if args.twin:
            from ..twins.coupling import couple  # MuJoCo is imported only for a twin

            now = time.monotonic()
            bus.twin = couple(args.twin, bus.servos, now)
            for servo, position in zip(sorted(bus.servos, key=lambda s: s.id), args.positions or ()):
                bus.twin.move_shaft(servo, position, now)
    except (ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.link and os.path.lexists(args.link):
        print(f"error: --link {args.link} already exists; pick a path that does not", file=sys.stderr)
        return 2
    server = PtyServer(bus)
    if args.link:
        os.symlink(server.port, args.link)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    print(json.dumps({"port": server.port, "link": args.link, "pid": os.getpid(), "protocol": args.protocol,
                      "model": args.model, "ids": list(args.ids), "baud": args.baud}), flush=True)

    def out(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    control = Control(sys.stdin.fileno(), out) if args.control else None
    try:
        server.serve(lambda: bool(stopping), control)
    finally:
        if args.link and os.path.islink(args.link) and os.readlink(args.link) == server.port:
            os.unlink(args.link)
    return 0


if __name__ == "__main__":
    sys.exit(main())
