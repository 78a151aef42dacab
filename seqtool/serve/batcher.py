"""Gathering concurrent requests into batches: one asyncio queue, a short wait
window and a maximum batch size, the model calls run in one worker thread so the
event loop stays free.

A request is a list of items (one prompt, or a translate request's sentences)
and a key (the model and the settings that must be the same across a batch:
beam, n-best, k, ...). The gatherer takes the oldest waiting request, waits up
to `window_s` (from that request's arrival or from the end of the last batch,
whichever is later) until `max_batch` items of its key are waiting, and runs
them as one call of `run(key, items)`, whose results it hands back to each
request in order. While a batch runs, the next one gathers. With
`max_batch` 1 every request runs alone (the one-at-a-time server of
bench/serve_load.py). At most `max_pending` items wait: beyond that a request
is refused at once (memory stays bounded).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

RunBatch = Callable[[Any, list[Any]], list[Any]]


class Busy(Exception):
    """More items wait than the batcher keeps (max_pending)."""


@dataclass
class _Request:
    key: Hashable
    items: list[Any]
    future: asyncio.Future[list[Any]]
    queued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    largest: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"batches": self.batches, "items": self.items, "largest": self.largest,
                "mean": round(self.items / self.batches, 2) if self.batches else 0.0}


class Batcher:
    def __init__(self, run: RunBatch, executor: Executor, *, window_s: float = 0.005,
                 max_batch: int = 32, max_pending: int = 1024) -> None:
        self.run, self.executor = run, executor
        self.window_s, self.max_batch, self.max_pending = window_s, max_batch, max_pending
        self.waiting: list[_Request] = []
        self.pending = 0  # items waiting or running
        self.stats = BatchStats()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def submit(self, key: Hashable, items: Sequence[Any]) -> list[Any]:
        """The results for `items`, in order, once their batch has run; the exception
        `run` raised for their batch, if any."""
        if self.pending + len(items) > self.max_pending:
            raise Busy(f"{self.pending} items are waiting")
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._gather())
        req = _Request(key, list(items), loop.create_future())
        self.waiting.append(req)
        self.pending += len(items)
        assert self._wake is not None
        self._wake.set()
        try:
            return await asyncio.shield(req.future)
        finally:
            if not req.future.done():  # cut (time limit): its items are no longer wanted
                req.future.cancel()

    async def _gather(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self.waiting:
                continue
            # the window opens when the first request came or when the model became
            # free, whichever is later: the clients a batch just answered can send
            # their next request in time to join the next batch
            deadline = max(self.waiting[0].queued, time.perf_counter()) + self.window_s
            while self._count() < self.max_batch and (left := deadline
                                                      - time.perf_counter()) > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except TimeoutError:
                    break
                self._wake.clear()
            await self._run_next()
            if self.waiting:
                self._wake.set()

    def _count(self) -> int:
        return sum(len(r.items) for r in self.waiting if r.key == self.waiting[0].key)

    def _take(self) -> list[_Request]:
        """The oldest request's key: its requests, oldest first, up to max_batch items
        (always at least one request, whatever its size)."""
        key, n = self.waiting[0].key, 0
        taken: list[_Request] = []
        for r in list(self.waiting):
            if r.key != key:
                continue
            if taken and n + len(r.items) > self.max_batch:
                break
            self.waiting.remove(r)
            if r.future.cancelled():
                self.pending -= len(r.items)
                continue
            taken.append(r)
            n += len(r.items)
        return taken

    async def _run_next(self) -> None:
        taken = self._take()
        if not taken:
            return
        items = [x for r in taken for x in r.items]
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.run, taken[0].key, items)
        except Exception as exc:  # the batch's requests get the error (InputError, ...)
            for r in taken:
                if not r.future.done():
                    r.future.set_exception(exc)
            return
        finally:
            self.pending -= len(items)
        self.stats.batches += 1
        self.stats.items += len(items)
        self.stats.largest = max(self.stats.largest, len(items))
        at = 0
        for r in taken:
            if not r.future.done():
                r.future.set_result(results[at:at + len(r.items)])
            at += len(r.items)
