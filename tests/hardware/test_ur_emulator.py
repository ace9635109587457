"""The emulated UR controller speaks RTDE, the dashboard and the script ports as ur_rtde expects: checked with our
own RTDE client (protocol level) and with the unmodified ur_rtde package (RTDEReceiveInterface,
RTDEControlInterface, DashboardClient) against the emulator in its own process on a loopback address."""

import datetime
import socket
import struct
import time

import numpy as np
import pytest

from robolearn_hardware.ur.controller import Controller, ControllerConfig, parse_program
from robolearn_hardware.ur.emulator import _recv_stamped, _stamp_arrivals, bind
from robolearn_hardware.ur.kinematics import UR5E, forward, inverse, jacobian
from robolearn_hardware.ur.process import UREmulatorProcess
from robolearn_hardware.ur.rtde import FrameReader, Message, Recipe, RTDEClient, RTDEError, frame
from tests.hardware.sched import fifo_permitted

pytest.importorskip("rtde_control", reason="the ur extra (ur-rtde) is not installed")
import dashboard_client  # noqa: E402
import rtde_control  # noqa: E402
import rtde_receive  # noqa: E402

Q0 = (0.1, -1.5, 1.4, -1.2, -1.57, 0.3)


@pytest.fixture(scope="module")
def emu():
    with UREmulatorProcess(q0=Q0, unlock_delay_s=0.3, gripper_activation_s=0.05) as e:
        yield e


def test_frames_reassemble_from_any_split_and_recipes_round_trip():
    recipe = Recipe(3, ["input_int_register_0", "input_double_register_0", "actual_q"],
                    ["INT32", "DOUBLE", "VECTOR6D"])
    values = {"input_int_register_0": 11, "input_double_register_0": 0.5, "actual_q": [1.0, 2, 3, 4, 5, 6]}
    wire = frame(Message.DATA_PACKAGE, recipe.pack(values)) * 2
    reader, got = FrameReader(), []
    for i in range(len(wire)):
        got += reader.feed(wire[i:i + 1])
    assert [k for k, _ in got] == [Message.DATA_PACKAGE] * 2
    assert recipe.unpack(got[0][1]) == values and got[0][1][0] == 3
    assert struct.unpack(">H", wire[:2])[0] == 3 + 1 + 4 + 8 + 48
    with pytest.raises(RTDEError, match="recipe 3 has 5 bytes"):
        recipe.unpack(b"\x03" + bytes(4))


def test_kinematics_jacobian_matches_finite_differences_and_ik_inverts_fk():
    q = np.array(Q0)
    j = jacobian(UR5E, q)
    for i in range(6):
        dq = np.zeros(6)
        dq[i] = 1e-6
        assert (forward(UR5E, q + dq)[:3] - forward(UR5E, q)[:3]) / 1e-6 == pytest.approx(j[:3, i], abs=1e-5)
    assert inverse(UR5E, forward(UR5E, q), seed=q + 0.05) == pytest.approx(q, abs=1e-7)


def test_the_control_script_is_read_from_what_ur_rtde_uploads():
    script = ("def rtde_control():\n    global reg_offset_int = # int register offset\n24\n"
              '    rtde_set_watchdog("input_int_register_24", watchdog_min_frequency, "stop")\n'
              "    def signal_ready():\n    read_input_integer_reg(0)\n# NODE_CONTROL_LOOP_BEGINS\n"
              "            if cmd == 24 or cmd == 11 or cmd == 66:\nend\n")
    prog = parse_program(script)
    assert (prog.name, prog.control, prog.offset, prog.watchdog_action) == ("rtde_control", True, 24, "stop")
    assert prog.realtime == {24, 11, 66}


def test_register_handshake_in_one_cycle_only_the_last_package_counts():
    c = Controller(ControllerConfig(twin=False))
    c.run_program("def rtde_control():\n  signal_ready()\n  read_input_integer_reg(0)\nend\n", 0.0)
    assert c.out_int[0] == 1
    c.on_input({"input_int_register_0": 35, "input_double_register_0": 50.0}, 0.001)
    c.step(0.002)
    assert c.out_int[0] == 2 and c.watchdog == ("input_int_register_0", 50.0, 0.002)  # done until cleared
    c.on_input({"input_int_register_0": 0}, 0.003)
    c.step(0.004)
    assert c.out_int[0] == 1
    target = [0.2, -1.5, 1.5, -1.5, -1.5, 0.0]
    c.on_input({"input_int_register_0": 11, **{f"input_double_register_{i}": v for i, v in enumerate(target)},
                "input_double_register_9": 0.1}, 0.005)
    c.on_input({"input_int_register_0": 11}, 0.0055)  # a second package in the same cycle: the first is lost
    c.step(0.006)
    c.step(0.008)  # no package: the script re-runs a stale command
    assert (c.counters["lost_packages"], c.counters["missed_cycles"], c.counters["servo_cycles"]) == (1, 1, 2)
    assert c.out_int[0] == 1 and c.servo_q == pytest.approx(target)
    # each says when the servo packages before it arrived (why the cycle had none, or two)
    lost, missed = [e for e in c.events if e.kind in ("lost_package", "missed_cycle")]
    assert (lost.kind, lost.t, lost.detail["arrivals"]) == ("lost_package", 0.006, [0.005, 0.0055])
    assert (missed.kind, missed.t, missed.detail["arrivals"]) == ("missed_cycle", 0.008, [0.005, 0.0055])
    c.step(0.030)  # 1/50 Hz after the last package that wrote input_int_register_0: the watchdog stops the script
    trip = [e for e in c.events if e.kind == "watchdog_trip"][0]
    assert trip.detail["deadline"] == pytest.approx(0.0055 + 0.02) and trip.t - trip.detail["deadline"] <= 0.005
    assert c.runtime.name == "STOPPED" and c.program is None


CONTROL_SCRIPT = "def rtde_control():\n  signal_ready()\n  read_input_integer_reg(0)\nend\n"


def servo(q0: float) -> dict:
    return {"input_int_register_0": 11, "input_double_register_0": q0, "input_double_register_9": 0.1}


def test_a_package_counts_for_the_first_cycle_that_starts_after_it_arrived():
    c = Controller(ControllerConfig(twin=False))
    c.run_program(CONTROL_SCRIPT, 0.0)
    emu = bind(None, c, None)
    try:
        def cycle(start):
            emu.hand_over(start)
            c.step(start)
            return c.servo_q[0], c.counters["missed_cycles"], c.counters["lost_packages"]

        # the second package arrived 0.1 ms after the cycle at 2 ms started: the real script read without it
        emu.inputs = [(0.0019, servo(0.1)), (0.0021, servo(0.2))]
        assert cycle(0.002) == (0.1, 0, 0)
        assert cycle(0.004) == (0.2, 0, 0)  # ... and gets it the cycle after
        assert cycle(0.006) == (0.2, 1, 0)  # nothing new: the script re-runs the old target, a missed cycle
        emu.inputs = [(0.0061, servo(0.3)), (0.0079, servo(0.4))]  # two in one cycle: the newest wins
        assert cycle(0.008) == (0.4, 1, 1)
        assert emu.inputs == [] and c.counters["servo_cycles"] == 4
    finally:
        emu.close()


def test_a_missed_cycle_is_the_emulators_when_its_previous_data_package_left_late():
    c = Controller(ControllerConfig(twin=False))
    c.run_program(CONTROL_SCRIPT, 0.0)
    c.on_input(servo(0.1), 0.005)
    c.step(0.006)
    c.last_publish = (0.006, 0.0064)  # published 0.4 ms into its cycle: the client had 1.6 ms and sent nothing
    c.step(0.008)
    assert (c.counters["missed_cycles"], c.counters["missed_cycles_late_publish"]) == (1, 0)
    c.last_publish = (0.008, 0.0095)  # 1.5 ms late (this process stalled): 0.5 ms left, less than half a period
    c.step(0.010)
    c.step(0.012)  # the package of 10 ms never went out (caught up): no window at all
    assert (c.counters["missed_cycles"], c.counters["missed_cycles_late_publish"]) == (3, 2)
    windows = [e.detail["window"] for e in c.events if e.kind == "missed_cycle"]
    assert windows[0] == pytest.approx(0.0016) and windows[1] == pytest.approx(0.0005) and windows[2] is None
    c.on_input(servo(0.2), 0.0125)
    c.last_publish = (0.012, 0.0125)
    c.step(0.014)  # a package came: not missed, whatever the window
    assert (c.counters["missed_cycles"], c.counters["missed_cycles_late_publish"]) == (3, 2)


def test_cycles_the_emulator_woke_too_late_for_run_at_their_own_starts():
    from robolearn_hardware.ur.emulator import CATCH_UP_CYCLES

    c = Controller(ControllerConfig(twin=False))
    c.run_program(CONTROL_SCRIPT, 0.0)
    emu = bind(None, c, None)
    published = []
    emu._publish = published.append
    try:
        emu.next_tick = 0.002
        # one package per cycle, on time, but this process wakes 3 cycles late (a VM stall): no cycle is missed
        emu.inputs = [(0.0015, servo(0.1)), (0.0035, servo(0.2)), (0.0055, servo(0.3)), (0.0075, servo(0.4))]
        emu.run_due(0.0081)
        assert (c.counters["servo_cycles"], c.counters["missed_cycles"], c.counters["lost_packages"]) == (4, 0, 0)
        assert c.counters["overruns"] == 3 and c.servo_q[0] == 0.4 and emu.inputs == []
        assert c.slack_hist == [0, 0, 4, 0, 0, 0, 0, 0, 0]  # each came 0.5 ms before its cycle: the 0.5-0.75 ms bin
        assert published == [pytest.approx(0.008)] and emu.next_tick == pytest.approx(0.010)  # the newest state only
        assert c.last_publish[0] == pytest.approx(0.008)  # (cycle, when its package went out): missed cycles' window
        # a stall the client did not cover is still a missed cycle at its own start
        emu.inputs = [(0.0115, servo(0.5))]
        emu.run_due(0.0121)
        assert (c.counters["missed_cycles"], c.servo_q[0]) == (1, 0.5)  # 10 ms: nothing had arrived; 12 ms: 0.5
        missed = [e for e in c.events if e.kind == "missed_cycle"][-1]  # run late, at 12.1 ms, for its 10 ms start
        assert (missed.t, missed.detail["run_at"]) == (pytest.approx(0.010), 0.0121)
        # a stall longer than CATCH_UP_CYCLES skips the rest (counted), never bursts more
        ticks = c.counters["ticks"]
        emu.run_due(emu.next_tick + (CATCH_UP_CYCLES + 10) * 0.002)
        assert c.counters["skipped_cycles"] == 10 and c.counters["ticks"] - ticks == CATCH_UP_CYCLES + 1
    finally:
        emu.close()


def test_rtde_bytes_are_stamped_with_the_time_the_kernel_received_them():
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as client:
        conn, _ = server.accept()
        with conn:
            _stamp_arrivals(conn)
            # Linux turns receive stamping on for the machine lazily (a deferred static key): until then a packet
            # is stamped when it is read. Wait until stamps show the arrival (what the emulator's first packages
            # of a run may lack too: they fall back to the read time).
            for _ in range(100):
                client.sendall(b"w")
                time.sleep(0.01)
                _, warm = _recv_stamped(conn)
                if time.monotonic() - warm >= 0.005:
                    break
            sent = time.monotonic()
            client.sendall(b"package")
            time.sleep(0.05)  # read late, as a descheduled emulator would
            data, arrival = _recv_stamped(conn)
    assert data == b"package"
    assert sent - 1e-3 <= arrival and time.monotonic() - arrival >= 0.04  # the arrival, not the read


def test_the_watchdog_acts_at_the_first_cycle_start_after_its_deadline():
    c = Controller(ControllerConfig(twin=False))
    c.run_program(CONTROL_SCRIPT, 0.0)
    c.on_input({"input_int_register_0": 35, "input_double_register_0": 100.0}, 0.0005)  # SET_WATCHDOG 100 Hz
    c.step(0.002)
    c.on_input({"input_int_register_0": 0}, 0.0021)
    c.on_input(servo(0.1), 0.0031)  # the last package: deadline 0.0131
    cycles = [0.002 * k for k in range(2, 8)]  # 4 .. 14 ms
    trips = []
    for t in cycles:
        c.step(t)
        trips.append(any(e.kind == "watchdog_trip" for e in c.events))
    assert trips == [False] * 5 + [True]
    trip = [e for e in c.events if e.kind == "watchdog_trip"][0]
    assert trip.t == pytest.approx(0.014) and trip.detail["deadline"] == pytest.approx(0.0131)
    assert c.runtime.name == "STOPPED"


def test_the_emulator_says_whether_its_cycle_runs_at_sched_fifo():
    with UREmulatorProcess(twin=False, gripper=False, rt_priority=None) as e:
        assert e.sched_fifo is False
    with UREmulatorProcess(twin=False, gripper=False, rt_priority=80) as e:
        assert e.sched_fifo is fifo_permitted()


def test_own_rtde_client_reads_outputs_at_the_configured_rate_and_refuses_unknown_names(emu):
    with RTDEClient(emu.host) as client:
        assert client.negotiate() and client.controller_version()[0] == 5
        with pytest.raises(RTDEError, match="does not know the output variables.*no_such_variable"):
            client.setup_outputs(["actual_q", "no_such_variable"], 125.0)
        client.setup_outputs(["timestamp", "actual_q", "runtime_state", "robot_mode"], 125.0)
        assert client.start()
        stamps = [client.receive()[1] for _ in range(20)]
    controller_dt = np.diff([s["timestamp"] for s in stamps])
    # 125 Hz: every 4th 2 ms cycle (more apart only when a loaded machine made the emulator skip cycles)
    assert controller_dt.min() == pytest.approx(0.008, abs=1e-6)
    assert np.allclose(controller_dt / 0.002, np.round(controller_dt / 0.002), atol=1e-6)
    assert stamps[-1]["actual_q"] == pytest.approx(Q0, abs=1e-3) and stamps[-1]["robot_mode"] == 7


def test_input_registers_in_use_by_another_client_are_refused(emu):
    with RTDEClient(emu.host) as a, RTDEClient(emu.host) as b:
        a.setup_inputs(["input_int_register_30"])
        with pytest.raises(RTDEError, match=r"input_int_register_30 \(IN_USE\)"):
            b.setup_inputs(["input_int_register_30"])
    with RTDEClient(emu.host) as c:  # released when the first client left
        assert c.setup_inputs(["input_int_register_30"]).id == 1


def test_dashboard_answers_as_polyscope(emu):
    dash = dashboard_client.DashboardClient(emu.host)
    dash.connect()
    try:
        assert dash.polyscopeVersion().startswith("5.15")
        assert dash.isInRemoteControl()
        assert "RUNNING" in dash.robotmode()
        assert dash.safetystatus() == "Safetystatus: NORMAL"
        with pytest.raises(RuntimeError, match="File not found: nothing.urp"):
            dash.loadURP("nothing.urp")
    finally:
        dash.disconnect()


def test_ur_rtde_servoj_stream_moves_the_twin_and_a_missed_watchdog_stops_the_script(emu):
    recv = rtde_receive.RTDEReceiveInterface(emu.host, 500.0, ["timestamp", "actual_q", "runtime_state",
                                                                "safety_status_bits"])
    ctl = rtde_control.RTDEControlInterface(emu.host)
    try:
        assert ctl.isProgramRunning() and emu.state()["program"] == "rtde_control"
        assert recv.getActualQ() == pytest.approx(Q0, abs=1e-3)
        assert ctl.setWatchdog(20.0)
        goal = np.array(Q0) + [0.05, 0.0, 0.0, 0.0, 0.0, -0.05]
        t0, period = ctl.initPeriod(), datetime.timedelta(seconds=0.002)
        for k in range(250):
            ctl.servoJ(goal.tolist(), 0.0, 0.0, 0.002, 0.05, 300)
            ctl.waitPeriod(t0 + k * period)
        deadline = time.monotonic() + 5.0
        while not np.allclose(recv.getActualQ(), goal, atol=5e-3) and time.monotonic() < deadline:
            ctl.servoJ(goal.tolist(), 0.0, 0.0, 0.002, 0.05, 300)  # streaming on (a loaded machine lags)
            time.sleep(0.002)
        assert recv.getActualQ() == pytest.approx(goal, abs=5e-3)
        assert emu.state()["servo_cycles"] > 50
        time.sleep(0.2)  # no command for 1/20 Hz
        deadline = time.monotonic() + 2.0
        while recv.getRuntimeState() != 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        state = emu.state()
        trip = [e for e in state["events"] if e["kind"] == "watchdog_trip"][-1]
        assert state["runtime_state"] == "STOPPED" and trip["min_frequency"] == 20.0
        assert not ctl.servoJ(goal.tolist(), 0.0, 0.0, 0.002, 0.05, 300)  # ur_rtde refuses: script not running
        assert ctl.reuploadScript()
        deadline = time.monotonic() + 5.0
        while not ctl.isProgramRunning() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ctl.isProgramRunning()
        assert ctl.triggerProtectiveStop() is False  # the robot stops: ur_rtde sees it and gives up waiting
        assert recv.getSafetyStatusBits() & (1 << 2)
        ctl.stopScript()
    finally:
        ctl.disconnect()
        recv.disconnect()
    emu.command("state")
