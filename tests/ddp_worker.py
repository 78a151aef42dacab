"""One rank of the data-parallel tests (tests/test_distributed.py starts two of these
with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set, as torchrun would).

    python tests/ddp_worker.py grads lm|translate OUT [cpu|cuda]   gradients after one step
    python tests/ddp_worker.py accum OUT                 all-reduces per optimizer step

Both build the tiny data and models of `tiny_lm` / `tiny_translation` below, which
the tests also use for their one-process references.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from seqtool.config import TrainConfig
from seqtool.configfile import build_config
from seqtool.distributed import World, init, world_from_env
from seqtool.models import build_model

LM_BATCH, BPTT, VOCAB = 4, 5, 23  # LM_BATCH is the global batch


def tiny_lm(seed: int = 3) -> tuple[Any, Any]:
    """A 2-layer LSTM language model and a token stream of 400 tokens (LMData)."""
    from seqtool.data.lm import LMData

    torch.manual_seed(seed)
    cfg = build_config({"task": "lm", "model": {"cell": "lstm", "emb_dim": 8, "hidden": 8,
                                                "layers": 2, "dropout": 0.0}})
    model = build_model("lm", cfg.model, VOCAB)
    g = torch.Generator().manual_seed(seed)
    stream = torch.randint(3, VOCAB, (400,), generator=g)
    return model, LMData(stream, stream[:60], LM_BATCH, BPTT)


def tiny_translation(seed: int = 3, batch_size: int = 6, n_pairs: int = 50
                     ) -> tuple[Any, Any]:
    """A GRU encoder-decoder with attention and random pairs of 1-9 tokens (ParallelData;
    50 pairs in batches of 6 / 2 ranks = 17 batches: one left over for 2 ranks)."""
    from seqtool.data.parallel import ParallelData

    torch.manual_seed(seed)
    cfg = build_config({"task": "translate", "model": {"emb_dim": 8, "enc_hidden": 8,
                                                       "dec_hidden": 16, "dropout": 0.0}})
    model = build_model("translate", cfg.model, (VOCAB, VOCAB))
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 10, (n_pairs, 2), generator=g).tolist()
    pairs = [(torch.randint(4, VOCAB, (s,), generator=g).tolist(),
              torch.randint(4, VOCAB, (t,), generator=g).tolist()) for s, t in lengths]
    return model, ParallelData(pairs, pairs[:5], batch_size, seed=7)


def trainer(model: Any, data: Any, world: World, run_dir: Path, saves: list[str],
            device: str = "cpu", **train: Any) -> Any:
    from seqtool.training import Trainer

    cfg = TrainConfig(**{"optimizer": "sgd", "lr": 0.1, "clip": 0.0, "patience": 0,
                         "log_every": 1, **train})
    return Trainer(model.to(device), data, cfg, run_dir, lambda name, _: saves.append(name),
                   device=device, world=world)


def grads(task: str, out: Path, device: str = "cpu") -> None:
    """This rank's gradients after one step on its first batch (rank 0 writes them)."""
    from safetensors.torch import save_file

    from seqtool.distributed import wrap

    world = world_from_env()
    device = init(world, device, 30)  # cuda: this rank's GPU, nccl
    model, data = tiny_lm() if task == "lm" else tiny_translation()
    t = trainer(model, data.shard(world.rank, world.size), world, out, [], device)
    t.model = wrap(t.module, t.device)
    batch = next(iter(t.data.train_batches(0)))
    loss, tokens = t._train_step([batch])
    if world.main:
        save_file({n: p.grad.cpu() for n, p in model.named_parameters() if p.grad is not None},
                  str(out / "grads.safetensors"))
        (out / "loss.json").write_text(json.dumps({"loss": loss, "tokens": tokens}))


def accum(out: Path) -> None:
    """Two optimizer steps of accum_steps 2 through Trainer.run, counting the gradient
    all-reduces (a DDP communication hook) and what each rank saved and wrote."""
    import seqtool.distributed as dist_mod

    world = world_from_env()
    init(world, "cpu", 30)
    calls = [0]
    wrap = dist_mod.wrap

    def counting_wrap(module: Any, device: Any) -> Any:
        ddp = wrap(module, device)

        def hook(state, bucket):  # no annotations: DDP checks them
            calls[0] += 1
            return torch.distributed.algorithms.ddp_comm_hooks.default_hooks.allreduce_hook(
                state, bucket)

        ddp.register_comm_hook(None, hook)
        return ddp

    dist_mod.wrap = counting_wrap
    import torch.distributed.algorithms.ddp_comm_hooks.default_hooks

    model, data = tiny_lm()
    run_dir = out / f"rank{world.rank}"
    run_dir.mkdir()
    saves: list[str] = []
    t = trainer(model, data.shard(world.rank, world.size), world, run_dir, saves,
                accum_steps=2, max_steps=2, epochs=1)
    summary = t.run()
    (out / f"rank{world.rank}.json").write_text(json.dumps({
        "allreduces": calls[0], "steps": summary["steps"], "saves": saves,
        "files": sorted(p.name for p in run_dir.iterdir())}))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "grads":
        grads(sys.argv[2], Path(sys.argv[3]), *sys.argv[4:])
    else:
        accum(Path(sys.argv[2]))
