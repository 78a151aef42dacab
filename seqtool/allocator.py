"""glibc malloc settings for training on a CPU.

By default glibc serves an allocation of 128 KiB or more (dynamically raised
up to 32 MiB) with its own mmap, and returns it to the system when freed. A
training step frees and re-allocates the same large activation and gradient
buffers every step, so each step pays page faults on fresh memory again.
Raising the mmap threshold and the trim threshold keeps freed memory in the
heap for the next step (what jemalloc/tcmalloc users get by default):
measured on the peers' translation model, 2 threads, bf16, a training step
went from a median of ~110 ms to ~95 ms.

Only glibc on Linux is touched; anywhere else this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # allocations below 256 MiB come from the heap
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of freed memory for reuse

_done = False


def keep_freed_memory() -> bool:
    """Apply the settings once per process; whether they were applied."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl has no mallopt)
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
