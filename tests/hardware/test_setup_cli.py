"""Setup for new users: one servo at a time gets its id and baud rate, the doctor's checks and fixes, and the
`robolearn` subcommands that wrap them (find-port, setup-motors, calibrate, doctor), against emulators."""

import json

import pytest
from typer.testing import CliRunner

from robolearn.cli.main import app
from robolearn_hardware.arms import SO101_LEADER
from robolearn_hardware.bus import BusError, Motor, MotorMismatchError, ServoBus, save_calibration
from robolearn_hardware.bus.setup import setup_motor
from robolearn_hardware.doctor import run_checks
from tests.hardware.rigs import PATIENT, centred_calibration, start_emulator

runner = CliRunner()


@pytest.mark.parametrize("protocol,model,baud", [("dynamixel", "xl330-m288", 57_600), ("feetech", "sts3215", 115_200)])
def test_setup_motor_finds_the_single_servo_at_any_baud_and_renumbers_it(emulator, protocol, model, baud):
    emu = emulator(protocol, model, [1], baud=baud, return_delay_us=0)
    found = setup_motor(emu.port, Motor(4, model))
    assert (found.id, found.baud, found.model_number) == (1, baud, Motor(1, model).spec.model_number)
    registers = emu.state(4)["registers"]
    assert registers["ID"] == 4 and registers["Baud_Rate"] == (3 if protocol == "dynamixel" else 0)
    bus = ServoBus(emu.port, {"x": Motor(4, model)}, retry=PATIENT)
    bus.connect()  # answers as id 4 at 1 Mbps
    bus.disconnect()


def test_setup_motor_refuses_two_servos_and_the_wrong_model(emulator):
    emu = emulator("feetech", "sts3215", [1, 2], return_delay_us=0)
    with pytest.raises(BusError, match=r"servos \[1, 2\] answered at 1000000 baud; connect only the servo"):
        setup_motor(emu.port, Motor(3, "sts3215"))
    one = emulator("dynamixel", "xl330-m288", [1], return_delay_us=0)
    with pytest.raises(MotorMismatchError, match="model number 1200, not xl430-w250"):
        setup_motor(one.port, Motor(2, "xl430-w250"))


def test_doctor_names_each_problem_with_its_fix(tmp_path):
    port = tmp_path / "ttyUSB0"
    port.write_text("")
    timer = tmp_path / "sys" / "bus" / "usb-serial" / "devices" / "ttyUSB0" / "latency_timer"
    timer.parent.mkdir(parents=True)
    timer.write_text("16\n")
    rules = tmp_path / "rules.d"
    rules.mkdir()
    checks = {c.name: c for c in run_checks(str(port), sysfs=str(tmp_path / "sys"), udev_dir=str(rules))}
    assert checks["access"].ok
    assert not checks["latency timer"].ok and checks["latency timer"].fix == f"echo 1 | sudo tee {timer}"
    assert not checks["udev rule"].ok and "latency_timer" in checks["udev rule"].fix
    timer.write_text("1\n")
    (rules / "50-serial.rules").write_text('ATTR{latency_timer}="1"\n')
    assert all(c.ok for c in run_checks(str(port), sysfs=str(tmp_path / "sys"), udev_dir=str(rules)))
    missing = run_checks(str(tmp_path / "ttyUSB9"))[0]
    assert not missing.ok and "find-port" in missing.fix


def test_cli_doctor_and_find_port(emulator):
    emu = emulator("feetech", "sts3215", [1], return_delay_us=0)
    out = runner.invoke(app, ["doctor", "--port", emu.port, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["checks"][0] == {"name": "access", "ok": True, "fix": "",
                                                   "detail": f"{emu.port} is readable and writable"}
    out = runner.invoke(app, ["find-port", "--list", "--json"])
    assert out.exit_code == 0 and isinstance(json.loads(out.output)["ports"], list)


def test_cli_setup_motors_walks_the_arm_one_servo_at_a_time(emulator):
    emu = emulator("feetech", "sts3215", [1], return_delay_us=0)  # a factory servo; "replugged" at each prompt
    out = runner.invoke(app, ["setup-motors", "so101-leader", "--port", emu.port], input="\n" * 6)
    assert out.exit_code == 0, out.output
    assert "'gripper': id 1 at 1000000 baud -> id 6" in out.output and "'shoulder_pan': id 2" in out.output
    assert emu.state(1)["registers"]["ID"] == 1
    two = emulator("feetech", "sts3215", [1, 2], return_delay_us=0)
    out = runner.invoke(app, ["setup-motors", "so101-leader", "--port", two.port], input="\n")
    assert out.exit_code == 2 and "connect only the servo to set up" in out.output


def test_cli_calibrate_asks_nothing_when_the_motors_hold_the_file_and_never_overwrites(emulator, tmp_path):
    emu = start_emulator(emulator, SO101_LEADER)
    cal = centred_calibration(SO101_LEADER)
    bus = ServoBus(emu.port, dict(SO101_LEADER.motors), retry=PATIENT)
    with bus:
        bus.write_calibration(cal)
    save_calibration(tmp_path / "so101_leader" / "arm.json", cal)
    args = ["calibrate", "so101-leader", "--port", emu.port, "--id", "arm", "--calibration-dir", str(tmp_path)]
    out = runner.invoke(app, args)
    assert out.exit_code == 0 and "the motors hold the calibration" in out.output, out.output
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = runner.invoke(app, ["calibrate", "so101-leader", "--port", emu.port, "--calibration-dir", str(blocker)])
    assert out.exit_code == 2 and "it is a single file, not a folder" in out.output


def test_cli_calibrate_robot_config_walks_each_arm_with_its_own_port_and_id(emulator, tmp_path):
    from robolearn_hardware.arms import SO101_FOLLOWER

    emus = {}
    for spec in (SO101_FOLLOWER, SO101_LEADER):
        emus[spec.kind] = emu = start_emulator(emulator, spec)
        cal = centred_calibration(spec)
        with ServoBus(emu.port, dict(spec.motors), retry=PATIENT) as bus:
            bus.write_calibration(cal)
        save_calibration(tmp_path / "cal" / spec.kind / f"{spec.kind[-6:]}.json", cal)
    retry = "{retries: 200, within_s: 3.0}"
    config = tmp_path / "pair.yaml"
    config.write_text(f"""robot:
  follower:
    device: so101-follower
    kwargs: {{port: {emus['so101_follower'].port}, id: llower, calibration_dir: {tmp_path / 'cal'}, retry: {retry}}}
  leader:
    device: so101-leader
    kwargs: {{port: {emus['so101_leader'].port}, id: leader, calibration_dir: {tmp_path / 'cal'}, retry: {retry}}}
""")
    out = runner.invoke(app, ["calibrate", "--robot", str(config)])
    assert out.exit_code == 0, out.output
    assert out.output.count("the motors hold the calibration") == 2
    assert out.output.index(emus["so101_follower"].port) < out.output.index(emus["so101_leader"].port)
    out = runner.invoke(app, ["calibrate", "--robot", "so101-emulated"])
    assert out.exit_code == 0 and "no servo arm to calibrate" in out.output
    out = runner.invoke(app, ["calibrate", "so101-leader", "--robot", str(config)])
    assert out.exit_code == 2 and "not both or neither" in out.output
    out = runner.invoke(app, ["calibrate", "so101-leader"])
    assert out.exit_code == 2 and "needs --port" in out.output


def test_robot_arms_of_a_bimanual_config_are_its_four_arms_followers_first():
    from robolearn.cli.hardware import robot_arms
    from robolearn.devices.robot_config import load_robot_config

    arms = robot_arms(load_robot_config("so101-bimanual"))
    assert [a.config.port for a in arms] == ["/dev/ttyACM0", "/dev/ttyACM1", "/dev/ttyACM2", "/dev/ttyACM3"]
    assert [a.spec.kind for a in arms] == ["so101_follower"] * 2 + ["so101_leader"] * 2
