"""Teleop devices and teleop recording, headless: SDL's dummy video driver and synthetic pygame events."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("pygame")

from robolearn.devices.teleop import (  # noqa: E402
    KeyboardTeleop,
    MouseTeleop,
    ScriptedTeleop,
    Teleop,
    TeleopViewer,
    make_teleop,
)

BOX = gym.spaces.Box(0.0, 512.0, (2,), np.float32)
OBS = {"state": np.array([100.0, 200.0], np.float32)}


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


def post(*events):
    import pygame

    for kind, attrs in events:
        pygame.event.post(pygame.event.Event(kind, **attrs))


def key(k, down=True):
    import pygame

    return (pygame.KEYDOWN if down else pygame.KEYUP, {"key": k, "mod": 0, "unicode": "", "scancode": 0})


def test_episode_keys_and_window_close():
    import pygame

    with KeyboardTeleop(BOX) as dev:
        assert isinstance(dev, Teleop) and dev.is_connected
        post(*(key(k) for k in (pygame.K_s, pygame.K_RETURN, pygame.K_d, pygame.K_BACKSPACE, pygame.K_r,
                                pygame.K_q, pygame.K_ESCAPE)), (pygame.QUIT, {}))
        assert dev.events() == ["save", "save", "discard", "discard", "rerecord", "quit", "quit", "quit"]
        assert dev.events() == []
    assert not dev.is_connected
    with pytest.raises(RuntimeError, match="not connected"):
        dev.get_action(OBS)


def test_keyboard_absolute_target_starts_at_origin_and_moves_per_tick():
    import pygame

    with KeyboardTeleop(BOX, mode="absolute", step=8.0, screen_y_down=True, origin=lambda o: o["state"]) as dev:
        assert dev.get_action(OBS) is None  # untouched: the caller holds the robot still
        post(key(pygame.K_RIGHT))
        np.testing.assert_array_equal(dev.get_action(OBS), [108.0, 200.0])
        np.testing.assert_array_equal(dev.get_action(OBS), [116.0, 200.0])  # held: one step per tick
        post(key(pygame.K_RIGHT, down=False), key(pygame.K_UP), key(pygame.K_UP, down=False))  # a tap: once
        np.testing.assert_array_equal(dev.get_action(OBS), [116.0, 192.0])  # up the frame is -y
        np.testing.assert_array_equal(dev.get_action(OBS), [116.0, 192.0])  # released: the target stays
        dev.reset()
        assert dev.get_action(OBS) is None


def test_keyboard_delta_mode_and_wasd():
    import pygame

    space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    with KeyboardTeleop(space, wasd=True) as dev:
        assert dev.get_action(OBS) is None
        post(key(pygame.K_w), key(pygame.K_d), key(pygame.K_s, down=True), key(pygame.K_s, down=False))
        action = dev.get_action(OBS)  # w + s cancel on y, d moves +x; s and d are movement keys here
        np.testing.assert_array_equal(action, [1.0, 0.0, 0.0, 0.0])
        assert action.dtype == np.float32 and dev.events() == []
        post(key(pygame.K_RETURN), key(pygame.K_BACKSPACE))
        assert dev.events() == ["save", "discard"]


def test_mouse_maps_the_frame_onto_the_action_box():
    import pygame

    viewer = TeleopViewer(size=(257, 129))
    with MouseTeleop(BOX, mode="absolute", screen_y_down=True, viewer=viewer) as dev:
        post((pygame.MOUSEMOTION, {"pos": (64, 96), "rel": (0, 0), "buttons": (0, 0, 0)}))
        assert dev.get_action(OBS) is None  # follow="button": nothing until the button is held
        post((pygame.MOUSEBUTTONDOWN, {"pos": (64, 96), "button": 1}))
        np.testing.assert_allclose(dev.get_action(OBS), [128.0, 384.0])  # (1/4, 3/4) of the frame
        post((pygame.MOUSEBUTTONUP, {"pos": (64, 96), "button": 1}))
        assert dev.get_action(OBS) is None
    with pytest.raises(ValueError, match="absolute-target envs only"):
        MouseTeleop(BOX)


def test_viewer_draws_the_frame_scaled_with_overlays():
    import pygame

    viewer = TeleopViewer(size=(192, 192))
    viewer.open()
    try:
        frame = np.zeros((96, 96, 3), np.uint8)
        frame[:, 48:] = (0, 200, 0)
        viewer.show(frame, ["episode 0   frame 3"], recording=True)
        shown = pygame.surfarray.array3d(pygame.display.get_surface()).swapaxes(0, 1)
        assert tuple(shown[100, 150]) == (0, 200, 0) and tuple(shown[100, 40]) == (0, 0, 0)
        assert (shown[:30, -50:, 0] > 200).any()  # the red REC marker, top right
    finally:
        viewer.close()


def test_make_teleop_names_accepted_devices(tmp_path):
    with pytest.raises(ValueError, match="keyboard, mouse, scripted"):
        make_teleop("gamepad", BOX)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"events": [{"key": "s"}]}))
    with pytest.raises(ValueError, match="integer 'tick'"):
        make_teleop(f"scripted:{bad}", BOX)
    with pytest.raises(FileNotFoundError):
        make_teleop(f"scripted:{tmp_path / 'missing.json'}", BOX)


# ---- recording ------------------------------------------------------------------------------------

# Two saved episodes, one discarded, one re-recorded (ticks count device reads over the session).
SCRIPT = {"device": "keyboard", "events": [
    {"tick": 0, "key": "right", "do": "down"}, {"tick": 4, "key": "right", "do": "up"},
    {"tick": 5, "key": "s"},                                    # episode 0 (seed 0): 5 ticks, saved
    {"tick": 6, "key": "up", "do": "down"}, {"tick": 7, "key": "up", "do": "up"},
    {"tick": 8, "key": "d"},                                    # seed 1: discarded
    {"tick": 9, "key": "left"}, {"tick": 11, "key": "r"},       # seed 2: re-recorded
    {"tick": 12, "key": "down"}, {"tick": 15, "key": "return"},  # seed 2 again: 3 ticks, saved
    {"tick": 16, "key": "q"},
]}


def write_script(tmp_path, script=SCRIPT):
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script))
    return path


def test_scripted_session_stores_exactly_the_saved_episodes(tmp_path):
    pytest.importorskip("gym_pusht")
    from robolearn.env.registry import make_env
    from robolearn.record.teleop import record_teleop
    from robolearn.store import Store

    out = tmp_path / "teleop.zarr"
    summary = record_teleop("robolearn/pusht", out, device=f"scripted:{write_script(tmp_path)}", clock="virtual")
    assert summary["episodes"] == 2 and summary["discarded"] == 1 and summary["rerecorded"] == 1
    assert summary["quit"] and summary["frames"] == 8

    store = Store.open(out)
    assert store.lengths.tolist() == [5, 3]
    assert store.episodes["seed"].tolist() == [0, 2]
    assert store.episodes["success"].tolist() == [False, False]
    assert store.episodes["status"].tolist() == [0, 0]  # "ok": the operator saved them
    env = make_env("robolearn/pusht")
    starts = [env.reset(seed=s)[0]["state"] for s in (0, 2)]
    env.close()
    # Episode 0: right held for ticks 0-3 (8 px per tick from the pusher's start), released at tick 4.
    x0, y0 = starts[0]
    expected0 = [[x0 + 8, y0], [x0 + 16, y0], [x0 + 24, y0], [x0 + 32, y0], [x0 + 32, y0]]
    np.testing.assert_array_equal(store.episode(0)["action"], np.array(expected0, np.float32))
    # Episode 1 (the re-record of seed 2): one tap of "down" (+y on screen), then the target holds.
    x2, y2 = starts[1]
    np.testing.assert_array_equal(store.episode(1)["action"], np.array([[x2, y2 + 8]] * 3, np.float32))
    np.testing.assert_array_equal(store.episode(0)["state"][0], starts[0])
    assert store.episode(1)["images/front"].shape == (3, 96, 96, 3)


def test_env_end_saves_with_its_success_flag(tmp_path):
    pytest.importorskip("gym_pusht")
    from robolearn.record.teleop import record_teleop
    from robolearn.store import Store

    script = write_script(tmp_path, {"device": "mouse", "idle_ticks": 10,
                                     "events": [{"tick": 0, "mouse": [0.5, 0.5], "button": True}]})
    summary = record_teleop("robolearn/pusht", tmp_path / "s.zarr", device=f"scripted:{script}", episodes=1,
                            clock="virtual", max_steps=4)
    assert summary["episodes"] == 1 and not summary["quit"]
    store = Store.open(tmp_path / "s.zarr")
    assert store.lengths.tolist() == [4]
    np.testing.assert_allclose(store.episode(0)["action"], [[256.0, 256.0]] * 4, atol=1.0)  # 1 window px
    assert store.episodes["success"].tolist() == [False]
    assert store.episodes["status"].tolist() == [2]  # "truncated": max_steps stopped it before the env did


def test_cli_teleop_smoke(tmp_path):
    pytest.importorskip("gym_pusht")
    from typer.testing import CliRunner

    from robolearn.cli.main import app

    out = tmp_path / "cli.zarr"
    args = ["teleop", "--env", "robolearn/pusht", "--out", str(out), "--device",
            f"scripted:{write_script(tmp_path)}", "--clock", "virtual", "--episodes", "1", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads([line for line in result.output.splitlines() if line.startswith("{")][-1])
    assert summary["episodes"] == 1 and summary["frames"] == 5 and not summary["quit"]

    bad = CliRunner().invoke(app, ["teleop", "--env", "robolearn/pusht", "--out", str(tmp_path / "x.zarr"),
                                   "--device", "joystick"])
    assert bad.exit_code == 2 and "unknown teleop device 'joystick'" in bad.output
