"""Bounded inference for the server: a fixed pool of threads, a short wait line, then 503.

Why threads: ONNX Runtime and OpenCV release the GIL, so two threads use two cores; and each
thread keeps its own landmarkers (an OpenCV cascade must not be shared between threads).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from facemark.inference import Landmarker


class Overloaded(Exception):
    """Every worker is busy and the wait line is full (or the wait ran out): answer 503."""


class TimedOut(Exception):
    """The request's time limit passed while its work ran: answer 504."""


class Workers:
    """`await workers.run(fn, ...)` runs `fn(get_landmarker, ...)` on one of `n` threads."""

    def __init__(self, n: int, queue: int, timeout_s: float):
        self.n, self.queue, self.timeout_s = n, queue, timeout_s
        self.pool = ThreadPoolExecutor(n, thread_name_prefix="facemark-worker")
        self.slots: asyncio.Semaphore | None = None  # made in the server's event loop
        self.waiting = 0
        self.busy = 0
        self._local = threading.local()

    def landmarker(self, model: str, detector: str, mirror: bool = False) -> Landmarker:
        """This thread's own landmarker for a (model, detector, mirror), made on first use."""
        cache = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = {}
        key = (model, detector, mirror)
        if key not in cache:
            cache[key] = Landmarker(model, threads=1, detector=detector, mirror=mirror)
        return cache[key]

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(self, *args)` on a worker thread within the time limit, or raise."""
        if self.slots is None:
            self.slots = asyncio.Semaphore(self.n)
        deadline = time.monotonic() + self.timeout_s
        if self.slots.locked() and self.waiting >= self.queue:
            raise Overloaded
        self.waiting += 1
        try:
            await asyncio.wait_for(self.slots.acquire(), self.timeout_s)
        except TimeoutError:
            raise Overloaded from None
        finally:
            self.waiting -= 1
        self.busy += 1
        future = asyncio.get_running_loop().run_in_executor(self.pool, fn, self, *args)

        def done(_):  # the slot is free only when the thread is, even after a timeout
            self.busy -= 1
            self.slots.release()

        future.add_done_callback(done)
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise TimedOut from None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
