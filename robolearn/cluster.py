"""One way to reach Ray: a local Ray sized for the job, or a running cluster by address.

Ray's default `ray.init()` reserves 30% of RAM for its object store and starts a dashboard; on the
2-core, 24 GiB machines robolearn targets that is wasteful, so a local Ray gets exactly `workers` CPUs
and a small object store. A Ray that is already initialised (a notebook, a test) is reused and left up.

>>> with ray_session(workers=2) as ray:  # doctest: +SKIP
...     ray.get([f.remote() for f in fns])
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from robolearn.errors import MissingExtraError

LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2


@contextlib.contextmanager
def ray_session(workers: int, address: str | None = None, log_to_driver: bool = False,
                purpose: str = "this command") -> Iterator:
    """Yield the `ray` module, initialised; shut it down afterwards only if this call started it."""
    try:
        import ray
    except ImportError as e:
        raise MissingExtraError(f"{purpose} needs Ray: pip install 'ray[default,train]'") from e
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=log_to_driver)
        else:
            ray.init(num_cpus=workers, object_store_memory=LOCAL_OBJECT_STORE_BYTES, include_dashboard=False,
                     log_to_driver=log_to_driver)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
