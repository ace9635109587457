"""Dropping files from the OS page cache (the "uncached" benchmarks; no dependency, so LeRobot's venv runs it too)."""

import os
from pathlib import Path


def drop_page_cache(folders) -> int:
    """fdatasync + posix_fadvise(DONTNEED) every file under `folders` (clean pages only are dropped,
    hence the sync first); return how many files."""
    n = 0
    for folder in folders:
        for p in Path(folder).rglob("*"):
            if p.is_file() and not p.is_symlink():
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fdatasync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
                n += 1
    return n
