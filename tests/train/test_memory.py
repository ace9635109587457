"""keep_freed_memory: large blocks freed in one step are reused by the next without new page faults."""

import subprocess
import sys

import pytest

from robolearn.train import TrainConfig, memory

# Allocates, touches and frees a 64 MB block (above glibc's largest mmap threshold) three times and prints
# the minor page faults of the last two rounds. Runs in its own process: the malloc settings are process-wide.
_PROBE = """
import ctypes, importlib.util, resource, sys
spec = importlib.util.spec_from_file_location("memory", sys.argv[2])  # the module alone, without torch
memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(memory)
if sys.argv[1] == "keep":
    assert memory.keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
n = 64 << 20
faults = []
for _ in range(3):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    p = libc.malloc(n)
    ctypes.memset(p, 1, n)
    libc.free(p)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(sum(faults[1:]))
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode, memory.__file__], capture_output=True, text=True, timeout=60, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_freed_blocks_are_reused_without_page_faults():
    pages = (64 << 20) // 4096
    assert _faults("default") > pages  # each round maps and faults the block in again
    assert _faults("keep") < pages // 100  # the freed block is reused


def test_training_config_turns_it_on_by_default():
    assert TrainConfig().keep_freed_memory is True
