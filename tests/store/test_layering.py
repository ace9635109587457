"""The store imports nothing above it: importing it (and its whole-store operations) loads no sampling,
policies, eval, train or runtime module."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ABOVE = ("robolearn.sampling", "robolearn.policies", "robolearn.eval", "robolearn.train", "robolearn.runtime",
         "robolearn.record", "robolearn.cli")

PROBE = """
import json, sys
import robolearn.store, robolearn.store.ops, robolearn.store.repair, robolearn.store.latents, robolearn.store.info
import robolearn.store.interop, robolearn.store.interop.common, robolearn.output
print(json.dumps(sorted(m for m in sys.modules if m.startswith("robolearn"))))
"""


def test_store_imports_nothing_above_it():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    above = [m for m in loaded if m.startswith(ABOVE)]
    assert above == [], above
    assert "robolearn.store.chunks" in loaded and "robolearn.output" in loaded


SAMPLING_PROBE = """
import json, sys
import robolearn.sampling, robolearn.sampling.tasks, robolearn.sampling.windows, robolearn.sampling.loader
print(json.dumps(sorted(m for m in sys.modules if m.startswith("robolearn"))))
"""


def test_sampling_imports_no_policies_training_or_runtime():
    # sampling sits on the store and the feature vocabulary; policies, the trainer and the loop sit above it
    out = subprocess.run([sys.executable, "-c", SAMPLING_PROBE], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    above = [m for m in loaded if m.startswith(ABOVE[1:])]
    assert above == [], above
    assert "robolearn.sampling.windows" in loaded and "robolearn.store" in loaded
