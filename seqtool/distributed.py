"""Data-parallel training across processes: who this process is (rank, world size),
the process group (gloo on CPU, nccl on CUDA), the few collectives the Trainer
needs, and how one epoch's data is shared out between the ranks.

A run with more than one process is started by `torchrun` (or `seqtool train
... --nproc N`, which runs torchrun), which sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; without them this is a world of one and nothing
here talks to anything.

Sharding, done once per epoch at the level of the data's sequence of batches:
- a token stream (language models) is cut into `world` contiguous slices, one
  per rank, each holding the same number of whole (batch x time) columns, so N
  ranks with batch B/N read exactly the columns one rank with batch B reads;
- bucketed batches (translation, chat) come from one generator seeded by
  (seed, epoch) on every rank, and are dealt round-robin: at step s rank r runs
  batch s * world + r. The last `len % world` batches of an epoch (at most
  world - 1; a different random set each epoch) are dropped, so every rank
  runs the same number of steps and none waits at the epoch's end.

train.batch_size is the global batch: each rank takes batch_size / world
(a world size that does not divide it is refused, never rounded).

torch is imported inside the functions: the CLI imports this module at start.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from seqtool.errors import ConfigError, TrainingError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

# the messages of torch's collectives when a peer is gone or silent
_PEER_SIGNS = ("Connection reset", "Connection closed", "Broken pipe", "timed out", "Timed out",
               "pair.cc", "NCCL", "ProcessGroup", "DistBackendError", "Socket", "unreachable")


class PeerLost(TrainingError):
    """Another process of the run died or stopped answering."""


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The one process that writes (checkpoints, logs, the progress bar)."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


SINGLE = World()


def world_from_env() -> World:
    """This process's place in a torchrun launch (a world of one without one)."""
    env = os.environ
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers",
                          "start several processes with torchrun, which sets them") from None
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(f"RANK {rank} is not in a world of {size} processes",
                          "start several processes with torchrun, which sets them")
    return World(rank, size, local)


def per_rank_batch(batch_size: int, world: int) -> int:
    """train.batch_size (global) shared by `world` ranks; refused where it does not divide."""
    if batch_size % world:
        lower, upper = batch_size - batch_size % world, batch_size + world - batch_size % world
        raise ConfigError(f"train.batch_size {batch_size} does not divide among {world} "
                          "processes (it is the global batch; each process takes an equal "
                          "share)", f"use --set train.batch_size={lower or upper} or "
                          f"{upper}, or another number of processes")
    return batch_size // world


def contiguous_slice(n_items: int, rank: int, world: int, multiple: int = 1) -> slice:
    """Rank `rank`'s part of n_items, cut into `world` equal contiguous parts whose
    length is a multiple of `multiple` (the remainder, < world * multiple, is left out)."""
    part = n_items // (world * multiple) * multiple
    return slice(rank * part, (rank + 1) * part)


def deal(items: Sequence[T], rank: int, world: int) -> list[T]:
    """Round-robin: item s * world + rank for each full round s; the uneven tail
    (len % world items) is dropped, so every rank gets len // world."""
    rounds = len(items) // world
    return [items[s * world + rank] for s in range(rounds)]


# ---------------------------------------------------------------------------- process group
def init(world: World, device: str, timeout_s: float) -> str:
    """Join the process group (nccl for CUDA, gloo for the CPU) and return the device
    this rank runs on (cuda:LOCAL_RANK on a GPU machine). A collective waits at
    most `timeout_s` for the others; a peer that died is usually noticed at once
    (its connection closes)."""
    if not world.parallel:
        return device
    import datetime

    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        gpus = torch.cuda.device_count()
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world.local_rank + 1))
        if max(per_node, world.local_rank + 1) > gpus:  # every rank of the node sees it
            raise ConfigError(f"{per_node} processes on this machine but {gpus} CUDA "
                              "device(s): nccl needs one GPU per process",
                              f"use --nproc-per-node {gpus} (or --nproc {gpus}), or "
                              "--device cpu")
        torch.cuda.set_device(world.local_rank)
        device = f"cuda:{world.local_rank}"
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        try:
            dist.init_process_group(backend, rank=world.rank, world_size=world.size,
                                    timeout=datetime.timedelta(seconds=timeout_s))
        except (RuntimeError, ValueError) as exc:
            raise PeerLost(f"could not join the other {world.size - 1} processes: "
                           f"{_first_line(exc)}", "check MASTER_ADDR/MASTER_PORT (torchrun "
                           "--rdzv-endpoint) and that every node was started") from None
    return device


def close() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def is_peer_failure(exc: BaseException) -> bool:
    """Whether a RuntimeError from a collective (or DDP's backward) says a peer is gone."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    return isinstance(exc, RuntimeError) and any(s in str(exc) for s in _PEER_SIGNS)


def peer_lost(exc: BaseException, world: World, timeout_s: float) -> PeerLost:
    return PeerLost(f"rank {world.rank} lost the other processes of this run (one died, or "
                    f"did not answer within train.dist_timeout = {timeout_s:g} s): "
                    f"{_first_line(exc)}", "see the other ranks' error lines; resume with "
                    "--resume RUN from the last saved step")


def _first_line(exc: BaseException) -> str:
    """The gist of a torch error: its first sentence, without a [source.cc:123] prefix."""
    import re

    lines = str(exc).strip().splitlines()
    text = re.sub(r"^\[[^\]]*\]\s*", "", lines[0]) if lines else type(exc).__name__
    return text.split(". ")[0].rstrip(".")[:200]


def all_reduce_sum(values: Sequence[float], device: torch.device | str) -> list[float]:
    """The sums over all ranks of a few numbers, in one collective (float64)."""
    import torch
    import torch.distributed as dist

    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return [float(v) for v in t.tolist()]


def broadcast(obj: Any, src: int = 0) -> Any:
    """`obj` as rank `src` has it, on every rank (small picklable objects: the
    evaluation's outcome; an in-memory transport, never read from a file)."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's `obj`, in rank order, on rank 0 (None on the others)."""
    import torch.distributed as dist

    rank = dist.get_rank()
    out: list[Any] | None = [None] * dist.get_world_size() if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def wrap(module: Any, device: torch.device) -> Any:
    """DistributedDataParallel around the model. Buffers are not synchronised in
    forward (the models have none that change in training) so that rank 0 can
    evaluate alone. Empty parameters (a full softmax's (0, d) tail-cluster table)
    get no gradient and are left out of the all-reduce."""
    from torch.nn.parallel import DistributedDataParallel

    empty = [name for name, p in module.named_parameters() if p.numel() == 0]
    if empty:
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, empty)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)


@contextlib.contextmanager
def signals_only_ask(ask_stop: Callable[[], None]) -> Iterator[None]:
    """With several ranks, Ctrl-C/SIGTERM only asks to stop: the ranks agree on it in
    the step's all-reduce and stop together after that step, so every rank saves
    the same step. More signals change nothing: on Ctrl-C a terminal signals every
    process and torchrun passes it on again (then kills what is left after 30 s)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ask(signum: int, frame: Any) -> None:
        ask_stop()

    old = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
