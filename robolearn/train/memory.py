"""Keep freed memory in the training process instead of handing it back to the OS every step.

glibc's malloc serves blocks above its mmap threshold (at most 32 MB) with fresh mmaps and trims the
top of its heap when enough is free, so every training step gets its large activations and gradients
as new pages: the kernel zero-fills and maps each 4 KB page again on first touch. Measured on the
2-core EPYC VM (DiffusionPolicy small, ResNet-18 at 84x84, batch 64, float32, one thread): ~30,000
page faults and 0.18 s of system time per 2.6 s step; with `keep_freed_memory` 2 faults, 0.03 s, and
the step 7% shorter, peak RSS unchanged (a training step allocates the same sizes every time).
"""

from __future__ import annotations

import ctypes
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse in this process: no heap trimming and no mmap'd
    blocks (`mallopt(M_TRIM_THRESHOLD, max)`, `mallopt(M_MMAP_MAX, 0)`). Process-wide and not undone; the
    process keeps its peak heap until it exits. Returns False (and changes nothing) where the C library
    is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)) and bool(mallopt(_M_MMAP_MAX, 0))
