"""What a run's last/ holds so that training continues exactly: the Trainer's
counters (TrainerState), the optimizer, the RNG states (with several ranks every
rank's, gathered on rank 0) and the recurrent state carried between batches; and
the checks that refuse a resume which could not continue exactly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from seqtool.errors import TrainingError
from seqtool.layers.state import carry_structure, flatten_carry, rebuild_carry

if TYPE_CHECKING:
    from seqtool.config import TrainConfig
    from seqtool.distributed import World


@dataclass
class TrainerState:
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    tokens_seen: int = 0
    elapsed_s: float = 0.0
    lr: float = 0.0
    best: float | None = None
    best_step: int = 0
    bad_evals: int = 0
    done: bool = False
    world_size: int = 1  # processes that trained it (torchrun)
    accum_steps: int = 1  # batches per optimizer step (step_in_epoch counts steps)
    history: list[dict[str, Any]] = field(default_factory=list)


class Resumable:
    """The Trainer's snapshot and restore (a mixin: the Trainer owns the fields)."""

    opt: torch.optim.Optimizer
    state: TrainerState
    cfg: TrainConfig
    world: World
    device: torch.device
    carry: Any
    _step_rng: dict[str, Tensor] | None

    def training_snapshot(self) -> dict[str, Any]:
        """What last/ holds to resume; with several ranks a collective (every rank's
        RNG and recurrent state are gathered on rank 0, as rank<r>.* entries)."""
        from seqtool.checkpoint import optimizer_to_tensors

        flat, groups = optimizer_to_tensors(self.opt)
        # mid-step (Ctrl-C) the step never happened: keep the RNG from before it
        rng = dict(self._step_rng) if self._step_rng is not None else self._rng_state()
        rng = {k: v.cpu() for k, v in rng.items()}
        for i, t in enumerate(flatten_carry(self.carry)):
            rng[f"carry.{i}"] = t.detach().cpu().contiguous()
        if self.world.parallel:
            from seqtool.distributed import gather_to_main

            ranks = gather_to_main(rng) or []
            for r, theirs in enumerate(ranks[1:], 1):
                rng.update({f"rank{r}.{k}": v for k, v in theirs.items()})
        state = dict(self.state.__dict__)
        state["carry_structure"] = carry_structure(self.carry)
        return {"state": state, "optimizer": flat, "param_groups": groups, "rng": rng}

    def restore(self, snap: dict[str, Any]) -> None:
        from seqtool.checkpoint import optimizer_from_tensors

        state = dict(snap["state"])
        structure = state.pop("carry_structure", None)
        self._check_resumable(state)
        self.state = TrainerState(**state)
        self.state.accum_steps = self.cfg.accum_steps
        optimizer_from_tensors(self.opt, snap["optimizer"], snap["param_groups"])
        mine = f"rank{self.world.rank}." if self.world.rank else ""
        rng = {k[len(mine):]: v for k, v in snap["rng"].items()
               if k.startswith(mine) and (mine or not k.startswith("rank"))}
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        flat = [rng[f"carry.{i}"].to(self.device) for i in range(len(rng)) if f"carry.{i}" in rng]
        self.carry = rebuild_carry(structure, flat)

    def _check_resumable(self, state: dict[str, Any]) -> None:
        """Refuse a resume that cannot continue exactly: another number of processes
        (each holds its own slice of the data and its own RNG and recurrent state),
        or another train.accum_steps in the middle of an epoch."""
        trained = int(state.get("world_size", 1))
        if trained != self.world.size:
            err = TrainingError(
                f"this run was trained by {trained} process(es) and cannot continue with "
                f"{self.world.size}: each process holds its own share of the data and its "
                "own random and recurrent state", "resume with the same number: "
                + (f"torchrun --nproc-per-node {trained} -m seqtool train ... --resume RUN "
                   f"(or --nproc {trained})" if trained > 1 else "without torchrun"))
            err.every_rank = True
            raise err
        if int(state.get("accum_steps", 1)) != self.cfg.accum_steps and state["step_in_epoch"]:
            err = TrainingError(
                f"train.accum_steps changed from {state.get('accum_steps', 1)} to "
                f"{self.cfg.accum_steps} in the middle of an epoch",
                "resume with the old value; it may change at an epoch's end")
            err.every_rank = True
            raise err

    def _rng_state(self) -> dict[str, Tensor]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return rng
