"""`robolearn find-cameras`: what opens and streams, with its size and a measured rate (a video file stands in
for a camera: OpenCV opens both the same way)."""

import json

from typer.testing import CliRunner

from robolearn.cli.main import app
from robolearn_hardware.cameras.find import candidates, find_cameras
from tests.hardware.test_cameras import SIZE, write_mp4


def run(*args):
    return CliRunner().invoke(app, ["find-cameras", *map(str, args)])


def test_a_streaming_device_is_listed_with_size_and_measured_rate(tmp_path):
    video = write_mp4(tmp_path / "cam.mp4", n=12, fps=20)
    result = run("--device", video, "--device", tmp_path / "absent.mp4", "--measure-s", 0.5, "--json")
    assert result.exit_code == 0, result.output
    cams = json.loads(result.output)["cameras"]
    assert len(cams) == 1  # the absent one does not open
    cam = cams[0]
    assert cam["device"] == str(video) and (cam["height"], cam["width"]) == SIZE
    assert cam["fps_reported"] == 20.0 and cam["frames"] == 11  # the first frame, then the 11 others
    assert cam["fps_measured"] > 0
    text = run("--device", video, "--measure-s", 0.2).output
    assert f"{video}: {SIZE[1]}x{SIZE[0]}" in text and f"size: [{SIZE[0]}, {SIZE[1]}]" in text


def test_candidates_are_the_video_nodes_or_indices(monkeypatch):
    import glob

    monkeypatch.setattr(glob, "glob", lambda pattern: ["/dev/video10", "/dev/video2", "/dev/video0"])
    assert candidates() == ["/dev/video0", "/dev/video2", "/dev/video10"]
    monkeypatch.setattr("sys.platform", "darwin")
    assert candidates(3) == [0, 1, 2]
    assert find_cameras([], measure_s=0.1) == []


def test_bad_measure_window_is_one_sentence():
    result = run("--measure-s", 0)
    assert result.exit_code == 2 and "--measure-s must be > 0, got 0.0" in result.output
