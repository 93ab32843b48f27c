"""Process-level settings and pools shared by every set of scoring workers (server, batch
scoring, evaluation).

Each worker process already has a core to itself; numeric libraries that start their own thread
teams (OpenMP in LightGBM, BLAS, torch) only contend with the other workers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

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


_WORKER: dict[str, Any] = {}
"""The scorer of a :func:`map_scorer` worker process (a pool initializer can leave state only in
its module); the parent process never writes here."""


def _init_scorer(model: str) -> None:
    from pronscore.scorer import Scorer

    one_thread_per_process()
    _WORKER["scorer"] = Scorer.from_pretrained(model)


def _call(fn: Callable[[Any, T], R], item: T) -> R:
    return fn(_WORKER["scorer"], item)


def map_scorer(fn: Callable[[Any, T], R], model: str, items: Iterable[T], jobs: int) -> Iterator[R]:
    """``fn(scorer, item)`` for every item, in order, in ``jobs`` worker processes that each
    load ``model`` once (``spawn``: a clean interpreter, one thread per library). ``fn`` must be
    a module-level function (it is pickled)."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(jobs, initializer=_init_scorer, initargs=(model,)) as pool:
        yield from pool.imap(partial(_call, fn), items, chunksize=1)
