"""Where and how a model runs: the device (`--device auto|cpu|cuda`), CPU threads,
bf16 autocast, moving batches to the device, and glibc's malloc settings for
training. Distributed set-up and quantisation belong here too, so that the
Trainer, decoding and the commands ask one module about the machine.

torch is imported inside the functions: the CLI imports this module at start.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str, quantize: str | None = None) -> str:
    """"auto" -> "cuda" where a GPU is present, else "cpu" (always "cpu" for a
    quantised model: int8 runs on the CPU); other names as given."""
    if name != "auto" or quantize:
        return "cpu" if name == "auto" else name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def set_threads(threads: int) -> None:
    """CPU threads for torch's operators (0 = leave torch's default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for precision "bf16", nothing for "fp32"."""
    import torch

    if precision == "bf16":
        device = torch.device(device)
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


_FP64_COPIES: Any = None  # WeakKeyDictionary: model -> its float64 copy


def for_precision(model: Any, precision: str) -> Any:
    """The model to run in `precision`: itself, or for "fp64" a float64 copy (made
    once per model and kept while the model lives). In float64 the rounding
    differences between kernels (thread count, batch shape) are ~1e-16, far below
    any gap between two candidates' scores, so decoding gives the same output on
    any machine; bf16/fp32 kernels round differently by thread count and batch."""
    global _FP64_COPIES
    if precision != "fp64":
        return model
    import copy
    import weakref

    if _FP64_COPIES is None:
        _FP64_COPIES = weakref.WeakKeyDictionary()
    if model not in _FP64_COPIES:
        _FP64_COPIES[model] = copy.deepcopy(model).double().eval()
    return _FP64_COPIES[model]


def decode_precision(search: Any, train_precision: str, quantized: bool = False) -> str:
    """search.precision, with "auto" meaning the precision the model trained in; for
    an int8 model (layers/int8.py) "auto" is fp32, the precision of its int8
    kernels' outputs and of everything between them, and fp64 is refused."""
    if quantized and search.precision == "fp64":
        from seqtool.errors import ConfigError

        raise ConfigError("--precision fp64 decodes a float64 copy; an int8 model has none",
                          "drop --quantize int8, or use --precision auto")
    if search.precision == "auto":
        return "fp32" if quantized else train_precision
    return str(search.precision)


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """The batch's tensors on `device` (other values as they are)."""
    import torch

    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


# --------------------------------------------------------------------------- malloc
# By default glibc serves an allocation of 128 KiB or more (dynamically raised up
# to 32 MiB) with its own mmap, and returns it to the system when freed. A training
# step frees and re-allocates the same large activation and gradient buffers every
# step, so each step pays page faults on fresh memory again. Raising the mmap
# threshold and the trim threshold keeps freed memory in the heap for the next
# step (what jemalloc/tcmalloc users get by default); bench/RESULTS.md has the
# measured effect. Only glibc on Linux is touched; anywhere else this does nothing.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # allocations below 256 MiB come from the heap
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of freed memory for reuse

_malloc_set = False


def keep_freed_memory() -> bool:
    """Apply the malloc settings once per process; whether they were applied."""
    global _malloc_set
    if _malloc_set or not sys.platform.startswith("linux"):
        return _malloc_set
    import ctypes  # here, not at the top: ctypes.util costs the CLI's start 25 ms
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl has no mallopt)
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _malloc_set = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                       and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _malloc_set
