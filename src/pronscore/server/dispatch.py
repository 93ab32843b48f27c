"""Where scoring jobs run: worker processes (default) or threads, behind a fair waiting line.

:class:`Dispatcher` hands a job to a backend only when a worker is free, so a job waits in
*our* queue (an ``asyncio.Semaphore``), never in the executor's: a request that is cancelled
while it waits (client gone, timeout) is never started. Once started, a job runs to its end
(a worker process cannot be interrupted cheaply); if nobody waits for it any more its result is
dropped, and its worker stays counted as busy until it really is free.

Backends return ``concurrent.futures.Future[Reply]``:

* :class:`ProcessBackend`: a ``ProcessPoolExecutor`` whose workers each load the model once
  (:func:`~pronscore.server.worker.init_worker`). Started with ``spawn``: a clean interpreter per
  worker, nothing inherited from the server's event loop or threads (``fork`` with a running
  loop is unsafe), and on every platform. Start-up of 2 workers until the first is ready, on a
  shared 2-core machine: spawn 4.1-7.2 s, forkserver 3.4-5.0 s; each worker still imports and
  loads the model itself either way (preloading in the fork server would import NumPy before the
  one-thread settings), so the small gain did not pay for the extra process. A pool that breaks
  (a worker killed) is replaced on the next job.
* :class:`ThreadBackend`: scorers in threads of the server process (``--workers 0`` and tests);
  pocketsphinx holds the GIL, so it does not scale with cores.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import multiprocessing
from dataclasses import dataclass
from typing import Protocol

from pronscore.server.worker import Job, Reply, init_worker, run_job, score_job, worker_info

log = logging.getLogger("pronscore.server")

START_METHOD = "spawn"


class Backend(Protocol):
    name: str  # the model's name
    size: int  # how many jobs can run at once
    mode: str  # "processes" or "threads"

    def submit(self, job: Job) -> cf.Future[Reply]: ...

    def close(self) -> None: ...


class ProcessBackend:
    """``size`` worker processes, each with its own scorer for ``model``."""

    mode = "processes"

    def __init__(self, model: str, size: int, start_method: str = START_METHOD) -> None:
        if size < 1:
            raise ValueError("a process backend needs at least one worker")
        self.model, self.size, self.start_method = model, size, start_method
        self._pool = self._start()
        self.name = self._pool_info(self._pool)

    def _start(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            self.size,
            mp_context=multiprocessing.get_context(self.start_method),
            initializer=init_worker,
            initargs=(self.model,),
        )

    def _pool_info(self, pool: cf.ProcessPoolExecutor) -> str:
        """Start every worker now (one probe each) and wait: a bad model fails here, clearly."""
        probes = [pool.submit(worker_info) for _ in range(self.size)]
        try:
            return probes[0].result()["model"]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            cf.wait(probes)

    def submit(self, job: Job) -> cf.Future[Reply]:
        try:
            return self._pool.submit(run_job, job)
        except cf.process.BrokenProcessPool:
            log.error("a scoring worker died; starting a new pool")
            self._pool = self._start()
            return self._pool.submit(run_job, job)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class ThreadBackend:
    """Scorers in threads of this process, one job per scorer at a time."""

    mode = "threads"

    def __init__(self, scorers: list) -> None:
        if not scorers:
            raise ValueError("a thread backend needs at least one scorer")
        self.name = scorers[0].name
        self.size = len(scorers)
        self._free = list(scorers)  # the Dispatcher never submits more than ``size`` jobs
        self._pool = cf.ThreadPoolExecutor(self.size, thread_name_prefix="pronscore-scorer")

    def submit(self, job: Job) -> cf.Future[Reply]:
        scorer = self._free.pop()
        future = self._pool.submit(score_job, scorer, job)
        future.add_done_callback(lambda _: self._free.append(scorer))
        return future

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Stats:
    """Counters since start (``GET /health``)."""

    scored: int = 0  # jobs a worker ran to the end (any reply)
    failed: int = 0  # jobs whose worker died under them (-> 500)
    cancelled: int = 0  # requests that left before their job started: never scored
    dropped: int = 0  # jobs that ran but whose client had left or timed out
    timed_out: int = 0  # 504s
    rejected: int = 0  # 503s: server full


class Dispatcher:
    """At most ``backend.size`` jobs run; the others wait here, in arrival order."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.stats = Stats()
        self.running = 0  # jobs in workers
        self.waiting = 0  # requests waiting for a worker
        self.admitted = 0  # scoring requests in the server (uploading, waiting or scored)
        self._slots: asyncio.Semaphore | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:  # made on first use: it belongs to the server's event loop
            self._slots = asyncio.Semaphore(self.backend.size)
        return self._slots

    async def run(self, job: Job) -> Reply:
        """Wait for a free worker, then score. Cancellable at any point (see module doc)."""
        slots = self._semaphore()
        self.waiting += 1
        try:
            await slots.acquire()
        except asyncio.CancelledError:
            self.stats.cancelled += 1
            raise
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            future = self.backend.submit(job)
        except BaseException:
            self._release(None)
            raise
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._release, f))
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if not future.cancel():  # already running (or done): it ends on its own
                self.stats.dropped += 1
            raise

    def _release(self, future: cf.Future[Reply] | None) -> None:
        self.running -= 1
        self._semaphore().release()
        if future is None:
            return
        if future.cancelled():
            self.stats.cancelled += 1
        elif future.exception() is not None:
            self.stats.failed += 1
        else:
            self.stats.scored += 1

    def close(self) -> None:
        self.backend.close()
