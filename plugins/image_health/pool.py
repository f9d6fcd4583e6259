"""A bounded worker pool for decoding and OpenCV, so the event loop never waits on a picture.

``mode="thread"`` (the default) runs jobs in a :class:`concurrent.futures.ThreadPoolExecutor`:
OpenCV, libjpeg and FFmpeg release the GIL while they work, nothing has to be copied between
processes, and it starts instantly. ``mode="process"`` runs them in a
:class:`concurrent.futures.ProcessPoolExecutor` (``spawn`` start method: the hub has threads, so
``fork`` would be unsafe); each worker imports OpenCV and PyAV once. ``bench/bench_health.py``
measures the MQTT command latency with both: the same within noise, so threads (no copying, no
start-up) are the default (see ``docs/image_health.md``).

At most ``workers`` jobs run at once and at most ``workers`` more wait in :meth:`HealthPool.run`
(an :class:`asyncio.Semaphore` in front of the executor), so a slow camera cannot pile work up.

The workers run at a lower CPU priority (``nice`` +:data:`WORKER_NICE`, per thread on Linux):
checks are background work, and without it a busy worker shares a core as an equal with the event
loop, so an officer's command waits behind a picture (``bench/bench_health.py`` measures the
``/set`` -> state latency with checks off and on; numbers in ``docs/image_health.md``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

T = TypeVar("T")


WORKER_NICE = 10
"""How much lower than the hub the workers' CPU priority is (0 = the same)."""


def lower_priority(nice: int) -> bool:
    """Lower the calling thread's CPU priority by ``nice`` (Linux: per thread; elsewhere the whole
    process, so only worker processes should call it there). Returns ``False`` if not possible."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id() if sys.platform.startswith("linux") else 0
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + nice))
    except OSError:
        return False
    return True


def _init_thread(nice: int) -> None:
    """Thread workers: lower priority (Linux only, where it does not touch the event loop's thread)."""
    if sys.platform.startswith("linux"):
        lower_priority(nice)


def _init_worker(nice: int) -> None:
    """Process workers: one picture per worker, the pool provides the parallelism; lower priority."""
    import cv2

    cv2.setNumThreads(1)
    lower_priority(nice)


def default_workers() -> int:
    """One worker per CPU core, at least 1 and at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


class HealthPool:
    """``await pool.run(fn, *args, **kw)`` runs ``fn`` in a worker and returns its result."""

    def __init__(self, workers: int | None = None, mode: Literal["thread", "process"] = "thread",
                 nice: int | None = None) -> None:
        self.workers = workers or default_workers()
        self.mode = mode
        self.nice = WORKER_NICE if nice is None else nice
        self._executor: concurrent.futures.Executor | None = None
        self._slots: asyncio.Semaphore | None = None

    def _ensure(self) -> tuple[concurrent.futures.Executor, asyncio.Semaphore]:
        if self._executor is None:
            if self.mode == "process":
                ctx = multiprocessing.get_context("spawn")
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    self.workers, mp_context=ctx, initializer=_init_worker, initargs=(self.nice,))
            else:
                # threads share OpenCV's global thread setting: leave it alone (changing it while
                # another thread runs a parallel OpenCV call can deadlock)
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self.workers, thread_name_prefix="health", initializer=_init_thread, initargs=(self.nice,))
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers * 2)
        return self._executor, self._slots

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        executor, slots = self._ensure()
        async with slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Stop the workers (running jobs finish in the background; nothing new starts)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
