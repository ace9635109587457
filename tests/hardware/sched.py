"""Whether this user may run a thread at SCHED_FIFO (root, CAP_SYS_NICE or an rtprio limit)."""

import os
import threading


def fifo_permitted() -> bool:
    """Try it on a throwaway thread (its scheduling class ends with it)."""
    if not hasattr(os, "SCHED_FIFO"):
        return False
    got: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            got.append(True)
        except PermissionError:
            got.append(False)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return got[0]
