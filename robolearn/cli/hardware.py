"""Setup commands for servo arms and cameras: `find-port`, `find-cameras`, `setup-motors`, `calibrate`, `doctor`.

They need the robolearn-hardware distribution; `register(app)` adds them to the `robolearn` command (the
hardware hook), and each one imports robolearn_hardware only when it runs. A bus failure (no reply, a
hardware error) ends the command with its one-sentence message, like a user error.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Optional

import typer

from robolearn.cli.errors import friendly
from robolearn.errors import CannotCompleteError, InvalidValueError, MissingExtraError

__all__ = ["register"]

ARM_HELP = "Arm device id: so101-follower, so101-leader, koch-follower, koch-leader, gello-leader."


def _hw():
    try:
        import robolearn_hardware
    except ImportError:
        raise MissingExtraError("the hardware commands need robolearn-hardware: pip install -e hardware "
                                "(or pip install robolearn-hardware[dynamixel,feetech])") from None
    return robolearn_hardware


@contextlib.contextmanager
def _bus_errors():
    from robolearn_hardware.bus import BusError

    try:
        yield
    except BusError as e:
        raise CannotCompleteError(str(e)) from None


def _arm(device: str, **kwargs):
    _hw()
    from robolearn.devices import make_device
    from robolearn_hardware.arms.base import _Arm

    arm = make_device(device, **kwargs)
    if not isinstance(arm, _Arm):
        raise InvalidValueError(f"{device!r} is not a single servo arm; accepted: {ARM_HELP.split(': ', 1)[1]}")
    return arm


def find_port(
    as_list: bool = typer.Option(False, "--list", help="Only list the serial ports there are now."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Find the port of a controller board: list the ports, unplug the board, list again."""
    _hw()
    from robolearn_hardware.ports import port_difference, serial_ports

    before = serial_ports()
    if as_list:
        print(json.dumps({"ports": before})) if as_json else typer.echo("\n".join(before) or "(no serial ports)")
        return
    typer.echo(f"ports now: {', '.join(before) or 'none'}")
    input("Unplug the USB cable of the controller board, then press Enter ")
    changed = port_difference(before, serial_ports())
    if len(changed) != 1:
        raise CannotCompleteError(f"{len(changed)} ports changed ({', '.join(changed) or 'none'}); unplug exactly one board and try again")
    print(json.dumps({"port": changed[0]})) if as_json else typer.echo(f"the board's port is {changed[0]}")


def find_cameras(
    device: Optional[list[str]] = typer.Option(None, "--device", help="Probe only these (an index or a path; "
                                                                      "repeatable). Default: every /dev/video* on "
                                                                      "Linux, indices 0..--max-index-1 elsewhere."),
    measure_s: float = typer.Option(1.0, "--measure-s", help="Seconds of frames read to measure each one's rate."),
    max_index: int = typer.Option(10, "--max-index", help="OpenCV indices to try where there is no /dev/video*."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """List the cameras that open and stream: OpenCV index or video device, resolution, reported and measured fps."""
    _hw()
    from robolearn_hardware.cameras.find import find_cameras as find

    if not measure_s > 0:
        raise InvalidValueError(f"--measure-s must be > 0, got {measure_s}")
    devices = None if not device else [int(d) if d.isdigit() else d for d in device]
    found = find(devices, measure_s=measure_s, max_index=max_index)
    if as_json:
        print(json.dumps({"cameras": [c.to_json() for c in found]}))
        return
    if not found:
        typer.echo("no camera opened and streamed (is it plugged in, and are you in the video group?)")
    for c in found:
        typer.echo(f"{c.device}: {c.width}x{c.height}, {c.fps_measured:.1f} fps measured ({c.fps_reported:g} "
                   f"reported, {c.backend}); robot config: device: {c.device!r}, size: [{c.height}, {c.width}]")


def setup_motors(
    device: str = typer.Argument(..., help=ARM_HELP),
    port: str = typer.Option(..., "--port", help="Serial port of the controller board."),
    baud: int = typer.Option(1_000_000, "--baud", help="Baud rate to give every servo."),
):
    """Give each new servo of an arm its id and baud rate, one servo connected at a time (last joint first)."""
    arm = _arm(device, port=port)
    from robolearn_hardware.bus.setup import setup_motor

    for name, motor in reversed(arm.spec.motors):
        input(f"Connect the controller board to the '{name}' servo only (id {motor.id}, {motor.model}), then press "
              "Enter ")
        with _bus_errors():
            before = setup_motor(port, motor, baud)
        typer.echo(f"'{name}': id {before.id} at {before.baud} baud -> id {motor.id} at {baud} baud")


def calibrate(
    device: Optional[str] = typer.Argument(None, help=ARM_HELP + " Or give --robot."),
    robot: Optional[str] = typer.Option(None, "--robot", help="A robot config (configs/robot/NAME.yaml or a path): "
                                                              "calibrate each servo arm in it, follower(s) then leader(s)."),
    port: Optional[str] = typer.Option(None, "--port", help="Serial port of the arm (with ARM)."),
    device_id: str = typer.Option("default", "--id", help="Device id: names the calibration file (with ARM)."),
    calibration_dir: Optional[Path] = typer.Option(None, "--calibration-dir",
                                                   help="Folder of calibration files (default: "
                                                        "$ROBOLEARN_CALIBRATION or ~/.config/robolearn/calibration)."),
    backend: str = typer.Option("sdk", "--backend", help="sdk (vendor SDK) or own (robolearn's codec)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Calibrate again and replace a saved calibration."),
):
    """Calibrate an arm (guided) and save it as JSON per device id; asks nothing when the motors hold it already.
    `calibrate --robot CONFIG` does so for every servo arm of a robot config (each with its own port and id)."""
    if (device is None) == (robot is None):
        raise InvalidValueError("calibrate takes an arm (ARM --port P) or --robot CONFIG, not both or neither")
    if robot is not None:
        return _calibrate_robot(robot, overwrite)
    if port is None:
        raise InvalidValueError(f"calibrate {device} needs --port (the arm's serial port; `robolearn find-port`)")
    arm = _arm(device, port=port, id=device_id, backend=backend,
               calibration_dir=str(calibration_dir) if calibration_dir else None)
    _calibrate_arm(arm, overwrite)


def _calibrate_arm(arm, overwrite: bool) -> None:
    from robolearn.output import check_files

    path = arm.calibration_file
    first_there = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    check_files(first_there if not first_there.is_dir() else path.parent, [path.name], overwrite=True)
    if not path.exists() or overwrite:
        check_files(path.parent, [path.name], overwrite=overwrite)
    with _bus_errors():
        arm.calibrate(overwrite=overwrite)


def robot_arms(config) -> list:
    """The servo arms of a robot config, follower(s) first (a bimanual pair gives both of its arms), built
    through the device registry with the config's kwargs; emulated ones are left out (their calibration is
    generated, `robolearn_hardware.arms.emulated`)."""
    _hw()
    from robolearn.devices import make_device
    from robolearn_hardware.arms.base import _Arm

    arms = []
    for spec in (config.follower, config.leader):
        if spec is None or not spec.device:
            continue
        device = make_device(spec.device, **spec.kwargs)
        for arm in getattr(device, "arms", (device,)):
            if isinstance(arm, _Arm) and getattr(arm, "emulated", None) is None:
                arms.append(arm)
    return arms


def _calibrate_robot(robot: str, overwrite: bool) -> None:
    from robolearn.devices.robot_config import load_robot_config

    config = load_robot_config(robot)
    arms = robot_arms(config)
    if not arms:
        typer.echo(f"robot {config.name}: no servo arm to calibrate (emulated arms carry a generated calibration)")
        return
    for arm in arms:
        typer.echo(f"robot {config.name}: calibrating {arm.spec.kind} on {arm.config.port} "
                   f"(id {arm.config.id}) -> {arm.calibration_file}")
        _calibrate_arm(arm, overwrite)


def doctor(
    port: str = typer.Option(..., "--port", help="Serial port of the arm."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Check the serial latency timer, its udev rule and access to the port; print the command that fixes each."""
    _hw()
    from robolearn_hardware.doctor import run_checks

    checks = run_checks(port)
    if as_json:
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": [c.to_json() for c in checks]}))
    else:
        for c in checks:
            typer.echo(f"[{'ok' if c.ok else 'FIX'}] {c.name}: {c.detail}" + (f"\n      fix: {c.fix}" if c.fix else ""))
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the hardware setup commands to the `robolearn` command."""
    for fn, name in ((find_port, "find-port"), (find_cameras, "find-cameras"), (setup_motors, "setup-motors"),
                     (calibrate, "calibrate"), (doctor, "doctor")):
        app.command(name)(friendly(fn))
