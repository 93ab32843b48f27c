"""Process-level settings shared by every pool of scoring workers (server, batch scoring).

Each worker process already has a core to itself; numeric libraries that start their own thread
teams (OpenMP in LightGBM, BLAS, torch) only contend with the other workers.
"""

from __future__ import annotations

import os
import sys

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def usable_cores() -> int:
    """Cores this process may run on (affinity / cgroup cpusets), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def one_thread_per_process() -> None:
    """Pin numeric libraries to one thread; call first thing in a worker process."""
    for var in THREAD_VARS:
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
