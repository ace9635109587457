"""The teleop window: pygame, the current frame scaled up, the recording state and the episode keys on top.

pygame is imported when a window opens (the `teleop` extra); headless runs use SDL's dummy video driver.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from robolearn.errors import CannotCompleteError, MissingExtraError

__all__ = ["KEYS_HELP", "TeleopViewer"]

KEYS_HELP = "s/Enter save   d/Backspace discard   r re-record   q/Esc quit   t takeover (deploy)"


def _pygame() -> Any:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError as e:
        raise MissingExtraError(f"the keyboard and mouse teleop devices need pygame ({e}); install it with "
                          "`pip install pygame`.") from e
    return pygame


class TeleopViewer:
    """A pygame window: the current frame scaled up, the recording state and the episode keys on top.

    Args:
        size: window (width, height) in px; frames are scaled to fill it.
        title: window caption.
    """

    def __init__(self, size: Sequence[int] = (512, 512), title: str = "robolearn teleop") -> None:
        self.size = (int(size[0]), int(size[1]))
        self.title = title
        self._screen = None
        self._font = None

    @property
    def is_open(self) -> bool:
        return self._screen is not None

    def open(self) -> None:
        if self._screen is not None:
            return
        pg = _pygame()
        pg.display.init()
        pg.font.init()
        try:
            self._screen = pg.display.set_mode(self.size)
        except pg.error as e:
            raise CannotCompleteError(f"cannot open the teleop window ({e}); run where a display is available, or set "
                               "SDL_VIDEODRIVER=dummy for scripted runs.") from e
        if pg.display.get_driver() in ("offscreen", "dummy") and not os.environ.get("SDL_VIDEODRIVER"):
            # SDL fell back to an invisible window by itself: nobody could see the frame or press a key.
            pg.display.quit()
            self._screen = None
            raise CannotCompleteError("cannot open the teleop window: no display found; run where a display is "
                               "available, or set SDL_VIDEODRIVER=dummy for scripted runs.")
        pg.display.set_caption(self.title)
        self._font = pg.font.Font(None, 22)

    def close(self) -> None:
        if self._screen is None:
            return
        pg = _pygame()
        self._screen = self._font = None
        pg.display.quit()

    def pump(self) -> list[Any]:
        """Every pygame event since the last call (the window stays responsive only while this is called)."""
        if self._screen is None:
            return []
        return _pygame().event.get()

    def to_unit(self, pos: Sequence[float]) -> tuple[float, float] | None:
        """Window px -> (u, v) in [0, 1] across the frame (u right, v down); None outside the window."""
        u, v = pos[0] / max(self.size[0] - 1, 1), pos[1] / max(self.size[1] - 1, 1)
        return (u, v) if 0.0 <= u <= 1.0 and 0.0 <= v <= 1.0 else None

    def to_window(self, unit: Sequence[float]) -> tuple[int, int]:
        """(u, v) in [0, 1] -> window px (inverse of `to_unit`)."""
        return round(unit[0] * (self.size[0] - 1)), round(unit[1] * (self.size[1] - 1))

    def show(self, frame: np.ndarray | None, lines: Sequence[str] = (), recording: bool = False) -> None:
        """Draw `frame` (H, W, 3) uint8 scaled to the window, `lines` top left, a red "REC" when recording."""
        if self._screen is None:
            return
        pg = _pygame()
        self._screen.fill((0, 0, 0))
        if frame is not None:
            surface = pg.surfarray.make_surface(np.ascontiguousarray(np.asarray(frame)[..., :3].swapaxes(0, 1)))
            self._screen.blit(pg.transform.scale(surface, self.size), (0, 0))
        y = 6
        for line in [*lines, KEYS_HELP]:
            text = self._font.render(line, True, (255, 255, 255), (0, 0, 0))
            self._screen.blit(text, (6, y) if line != KEYS_HELP else (6, self.size[1] - text.get_height() - 6))
            y += text.get_height() + 2
        if recording:
            rec = self._font.render("REC", True, (255, 40, 40), (0, 0, 0))
            x = self.size[0] - rec.get_width() - 8
            pg.draw.circle(self._screen, (255, 40, 40), (x - 10, 6 + rec.get_height() // 2), 6)
            self._screen.blit(rec, (x, 6))
        pg.display.flip()
