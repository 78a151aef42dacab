"""The one thread that runs torch in the server.

torch's CPU operators share their work out to an OpenMP thread team that belongs
to the OS thread calling them. Measured here (2 cores, torch 2.13, the shipped
de->en model on Multi30k validation sentences, 2 torch threads): with the model
loaded in the main thread and decoding in a worker thread, as a server whose
event loop owns the main thread does, decoding ran at half the speed of either
thread alone (one sentence at a time 25 against 58 sentences/s, batches of 8: 85
against 150) and kept one core busy out of two; once two threads have run
parallel operators, the operators of both are slow. So every torch call of the
server, loading the models included, runs in this one thread, and the event
loop never calls torch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_LOCK = threading.Lock()
_THREAD: ThreadPoolExecutor | None = None


def model_thread() -> ThreadPoolExecutor:
    """The process's model thread (an executor of one thread, made on first use)."""
    global _THREAD
    with _LOCK:
        if _THREAD is None:
            _THREAD = ThreadPoolExecutor(1, thread_name_prefix="seqtool-model")
        return _THREAD


def in_model_thread(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) run in the model thread: its result, or the exception it raised."""
    return model_thread().submit(fn, *args).result()
