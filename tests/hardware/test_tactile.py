"""GelSight-style tactile sensing on synthetic marker images warped by known fields (issue 13 part 2)."""

import numpy as np
import pytest

from robolearn.devices import check_device, make_device
from robolearn_hardware.cameras import ThreadedCamera
from robolearn_hardware.tactile import (GelSightSensor, MarkerError, MarkerTracker, SyntheticGelSource, detect_markers,
                                        render_markers, true_displacement, warp)
from robolearn_hardware.tactile.synthetic import grid_points, rotation, shear_bump, translation

SIZE, GRID, SPACING = (120, 160), (6, 8), 18.0
TOLERANCE_PX = 0.5


def combined(*fields):
    def field(x, y):
        parts = [f(x, y) for f in fields]
        return sum(p[0] for p in parts), sum(p[1] for p in parts)
    return field


FIELDS = {
    "translation": translation(1.3, -0.7),
    "twist": rotation((80, 60), 4.0),
    "shear_bump": shear_bump((60, 45), (3.0, -2.0), 25),
    "press_and_drag": combined(rotation((90, 70), -2.5), shear_bump((100, 60), (-2.5, 1.5), 30), translation(0.4, 0.2)),
}


def test_markers_at_rest_are_found_to_a_twentieth_of_a_pixel():
    tracker = MarkerTracker(render_markers(SIZE, GRID, SPACING), *GRID)
    assert tracker.reference.shape == (*GRID, 2)
    assert np.abs(tracker.reference - grid_points(SIZE, GRID, SPACING)).max() < 0.05
    assert MarkerTracker(render_markers(SIZE, GRID, SPACING)).shape == GRID  # grid inferred without rows/cols


@pytest.mark.parametrize("noise", [0.0, 3.0])
@pytest.mark.parametrize("name", list(FIELDS))
def test_known_field_is_recovered_within_half_a_pixel(name, noise):
    rng = np.random.default_rng(7)
    reference = render_markers(SIZE, GRID, SPACING, noise=noise, seed=1)
    image = warp(render_markers(SIZE, GRID, SPACING), FIELDS[name]).astype(np.float64)
    image = np.clip(image + rng.normal(0, noise, image.shape[:2])[..., None], 0, 255).astype(np.uint8)
    tracker = MarkerTracker(reference, *GRID)
    field = tracker.update(image)
    truth = true_displacement(grid_points(SIZE, GRID, SPACING), FIELDS[name])
    assert field.shape == (*GRID, 2) and field.dtype == np.float32
    assert np.abs(truth).max() > 1.0  # the field really moves the dots
    error = np.linalg.norm(field - truth, axis=-1)
    assert error.max() < TOLERANCE_PX, f"{name}: worst marker off by {error.max():.3f} px"
    assert tracker.missed == 0


def test_tracking_follows_a_drag_longer_than_half_the_spacing():
    reference = render_markers(SIZE, GRID, SPACING)
    tracker = MarkerTracker(reference, *GRID)
    for dx in np.linspace(0.8, 12.0, 15):   # 12 px, two thirds of the spacing, in steps
        field = tracker.update(warp(reference, translation(dx, 0.0)))
    inner = field[1:-1, 1:-1]  # the border columns' dots leave / get cut by the image edge
    np.testing.assert_allclose(inner[..., 0], 12.0, atol=TOLERANCE_PX)
    np.testing.assert_allclose(inner[..., 1], 0.0, atol=TOLERANCE_PX)
    # one jump of 8 px (beyond max_step = 0.4 x spacing) is not followed: those dots keep their place, counted
    tracker.reset()
    jumped = tracker.update(warp(reference, translation(8.0, 0.0)))
    assert tracker.missed >= (GRID[0] - 2) * (GRID[1] - 2) and np.abs(jumped[1:-1, 1:-1]).max() == 0.0


def test_bad_reference_images_are_one_sentence():
    with pytest.raises(MarkerError, match="found 0 markers"):
        MarkerTracker(np.full((*SIZE, 3), 200, np.uint8))
    with pytest.raises(MarkerError, match=r"expected rows x cols = 5 x 8"):
        MarkerTracker(render_markers(SIZE, GRID, SPACING), rows=5, cols=8)
    assert detect_markers(np.full(SIZE, 128, np.uint8)).shape == (0, 2)


def test_synthetic_gelsight_passes_check_device_and_reads_the_frame_field():
    check_device(make_device("synthetic-gelsight", name="left", fps=60))
    source = SyntheticGelSource(SIZE, GRID, SPACING, fps=60, shift=2.5, period=1.0, noise=0.0)
    with GelSightSensor("right", ThreadedCamera("right_cam", source, max_age=1.0), GRID) as pad:
        reading = pad.read()
        field = reading.values["tactile/right"]
        assert field.shape == (*GRID, 2) and reading.t_capture > 0
        assert np.isfinite(field).all() and pad.missed == 0


def test_gelsight_with_a_given_reference_and_rereference():
    reference = render_markers(SIZE, GRID, SPACING)
    source = SyntheticGelSource(SIZE, GRID, SPACING, fps=60, shift=2.5, period=0.5, noise=0.0)
    pad = GelSightSensor("p", ThreadedCamera("p_cam", source, max_age=1.0), GRID, reference=reference)
    with pad:
        assert np.abs(pad.tracker.reference - grid_points(SIZE, GRID, SPACING)).max() < 0.05
        pad.rereference()
        assert pad.tracker.reference.shape == (*GRID, 2)
    with pytest.raises(Exception, match="grid=\\(0, 3\\)"):
        GelSightSensor("bad", ThreadedCamera("c", source), (0, 3))
