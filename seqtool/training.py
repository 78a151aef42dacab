"""The model-agnostic training loop.

It knows only the module call `model(batch, carry) -> LossResult` (models/base.py:
`forward`, so the model may be wrapped, e.g. by DistributedDataParallel) and a data
object with `train_batches(epoch)`, `valid_batches()`, `steps_per_epoch()`,
`metric` and `higher_is_better`, and optionally `extra_metrics(model, device)
-> {name: value}` (e.g. greedy-decoding BLEU), merged into each evaluation as
`valid_<name>`, so `metric` may name one. It reports through a Reporter (the CLI's
rich progress bar, TensorBoard, or nothing), writes the run's history
(history.py: RUN/metrics.jsonl per evaluation, RUN/train.jsonl per progress
report) and saves through a `save(name, training)` callback: best/, last/, and
with train.keep_last = N the last N evaluations as ckpt-<step>/; it never prints.

Resuming is exact: the last/ checkpoint holds the optimizer, the RNG states,
the recurrent state carried between batches and the position in the epoch, so
N steps interrupted and resumed give the same weights as N steps in one go.

Under torchrun (a `World` of several ranks, seqtool/distributed.py) the model is
wrapped in DistributedDataParallel and each rank trains on its own share of the
data. The loss is normalised by the token count of all ranks and micro-batches
of the step (one all-reduce of a few numbers per optimizer step, after the
gradients'), so N ranks x batch B give the gradients of one process with batch
N x B. With train.accum_steps = K an optimizer step runs K batches, gradients
synchronised on the last one only (`no_sync` on the others). Rank 0 alone
validates, writes and reports; the evaluation's outcome (best, lr, early stop)
is broadcast. Ctrl-C/SIGTERM on any rank stops every rank after the same step,
with last/ holding each rank's RNG and recurrent state.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from seqtool.config import TrainConfig
from seqtool.distributed import SINGLE, World
from seqtool.errors import Interrupted, TrainingError
from seqtool.folders import uninterruptible
from seqtool.history import METRICS_FILE, TRAIN_LOG_FILE, append_record
from seqtool.models.base import LossResult
from seqtool.runtime import autocast, keep_freed_memory, to_device


class Reporter(Protocol):
    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_step(self, stats: dict[str, Any]) -> None: ...
    def on_eval(self, metrics: dict[str, Any]) -> None: ...
    def on_end(self, summary: dict[str, Any]) -> None: ...


class NullReporter:
    def on_start(self, info: dict[str, Any]) -> None: pass
    def on_step(self, stats: dict[str, Any]) -> None: pass
    def on_eval(self, metrics: dict[str, Any]) -> None: pass
    def on_end(self, summary: dict[str, Any]) -> None: pass


class Reporters:
    """Several reporters as one (the progress bar and TensorBoard), called in order."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = reporters

    def _each(self, event: str, payload: dict[str, Any]) -> None:
        for r in self.reporters:
            getattr(r, event)(payload)

    def on_start(self, info: dict[str, Any]) -> None:
        self._each("on_start", info)

    def on_step(self, stats: dict[str, Any]) -> None:
        self._each("on_step", stats)

    def on_eval(self, metrics: dict[str, Any]) -> None:
        self._each("on_eval", metrics)

    def on_end(self, summary: dict[str, Any]) -> None:
        self._each("on_end", summary)


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


@torch.no_grad()
def evaluate_loss(model: nn.Module, batches: Iterable[dict[str, Tensor]], device: torch.device,
                  precision: str = "fp32") -> dict[str, float]:
    """Mean NLL per predicted token over `batches` (carry passed along)."""
    was_training = model.training
    model.eval()
    total, tokens, carry = 0.0, 0, None
    extras: dict[str, float] = {}
    for batch in batches:
        with autocast(device, precision):
            res: LossResult = model(to_device(batch, device), carry)
        total += float(res.loss_sum)
        tokens += res.tokens
        carry = res.carry
        for k, v in res.extra.items():
            extras[k] = extras.get(k, 0.0) + v
    model.train(was_training)
    nll = total / max(tokens, 1)
    return {"loss": nll, "ppl": math.exp(min(nll, 50.0)), "tokens": tokens, **extras}


class Trainer:
    def __init__(self, model: nn.Module, data: Any, cfg: TrainConfig, run_dir: Path,
                 save: Callable[[str, dict[str, Any] | None], None],
                 reporter: Reporter | None = None, device: str | torch.device = "cpu",
                 resume_command: str = "seqtool train lm", world: World = SINGLE) -> None:
        self.module = model  # the model itself: evaluation, decoding
        self.model: nn.Module = model  # what trains: the model, or DDP around it (run)
        self.world = world
        self.resume_command = resume_command  # for the hint after Ctrl-C
        self.data = data
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.save = save
        self.reporter = (reporter or NullReporter()) if world.main else NullReporter()
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.state = TrainerState(lr=cfg.lr, world_size=world.size, accum_steps=cfg.accum_steps)
        self.carry: Any = None
        self._step_rng: dict[str, Tensor] | None = None  # RNG before the step in progress
        self._stop_asked = False  # a signal arrived (several ranks: stop after this step)
        self._stop_all = False  # some rank asked: every rank stops after this step
        self._elapsed = 0.0  # the ranks' mean training time after the last step
        self._clock_start = time.perf_counter()
        if world.rank:  # each rank its own dropout masks (rank 0 as one process would)
            torch.manual_seed(cfg.seed + 7919 * world.rank)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam,
                     "adamw": torch.optim.AdamW}[cfg.optimizer]
        # fused: one kernel for all parameters (CPU and CUDA); Adam's step on the
        # peers' translation model: 11.6 -> 2.6 ms on 2 threads, the same update.
        self.opt = optimizer(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)

    # --- resumable state -------------------------------------------------------
    def training_snapshot(self) -> dict[str, Any]:
        """What last/ holds to resume; with several ranks a collective (every rank's
        RNG and recurrent state are gathered on rank 0, as rank<r>.* entries)."""
        from seqtool.checkpoint import optimizer_to_tensors

        flat, groups = optimizer_to_tensors(self.opt)
        # mid-step (Ctrl-C) the step never happened: keep the RNG from before it
        rng = dict(self._step_rng) if self._step_rng is not None else self._rng_state()
        rng = {k: v.cpu() for k, v in rng.items()}
        for i, t in enumerate(_flatten(self.carry)):
            rng[f"carry.{i}"] = t.detach().cpu().contiguous()
        if self.world.parallel:
            from seqtool.distributed import gather_to_main

            ranks = gather_to_main(rng) or []
            for r, theirs in enumerate(ranks[1:], 1):
                rng.update({f"rank{r}.{k}": v for k, v in theirs.items()})
        state = dict(self.state.__dict__)
        state["carry_structure"] = _structure(self.carry)
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
        self.carry = _rebuild(structure, flat)

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

    # --- the loop ----------------------------------------------------------------
    def _set_lr(self, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr

    def _scheduled_lr(self) -> float:
        cfg, st = self.cfg, self.state
        lr = st.lr
        if cfg.warmup_steps and st.global_step < cfg.warmup_steps:
            lr = lr * (st.global_step + 1) / cfg.warmup_steps
        if cfg.schedule == "cosine":
            total = cfg.max_steps or cfg.epochs * self._steps_per_epoch()
            progress = st.global_step / max(1, total)
            if cfg.max_minutes:  # a time budget: anneal by whichever runs out first
                progress = max(progress, st.elapsed_s / (cfg.max_minutes * 60))
            lr = lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return lr

    def _steps_per_epoch(self) -> int:
        """Optimizer steps per epoch: the data's batches (this rank's), accum_steps each."""
        return math.ceil(self.data.steps_per_epoch() / self.cfg.accum_steps)

    def _train_step(self, group: list[dict[str, Tensor]]) -> tuple[float, int]:
        """One optimizer step on a group of accum_steps batches: the mean loss per
        token of the step (all ranks) and its token count."""
        if self.world.parallel or len(group) > 1:
            return self._accumulated_step(group)
        batch = group[0]
        with autocast(self.device, self.cfg.precision):
            res: LossResult = self.model(to_device(batch, self.device), self.carry)
        loss = res.loss_sum / max(res.tokens, 1)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingError(
                f"loss became {value} at step {self.state.global_step + 1}; nothing was saved "
                "from this step", "lower train.lr or set train.clip; resume from last/ with "
                "--resume RUN --set train.lr=...")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self._set_lr(self._scheduled_lr())
        self.opt.step()
        self.carry = res.carry
        return value, res.tokens

    def _accumulated_step(self, group: list[dict[str, Tensor]]) -> tuple[float, int]:
        """Backward of each batch's summed loss, gradients all-reduced on the last one
        only, then divided by the token count of every batch of every rank: the
        gradient of the mean loss per token over all of them."""
        scale = float(self.world.size)  # DDP averages over ranks; this makes it a sum
        ddp = self.world.parallel
        self.opt.zero_grad(set_to_none=True)
        loss_sum, tokens, carry = 0.0, 0, self.carry
        for i, batch in enumerate(group):
            last = i == len(group) - 1
            with (contextlib.nullcontext() if last or not ddp else self.model.no_sync()):  # type: ignore[operator]
                with autocast(self.device, self.cfg.precision):
                    res: LossResult = self.model(to_device(batch, self.device), carry)
                (res.loss_sum * scale).backward()
            loss_sum += float(res.loss_sum.detach())
            tokens += res.tokens
            carry = res.carry
        if ddp:
            from seqtool.distributed import all_reduce_sum

            local = time.perf_counter() - self._clock_start
            loss_sum, n, stops, elapsed = all_reduce_sum(
                [loss_sum, tokens, float(self._stop_asked), local], self.device)
            tokens, self._stop_all = int(n), stops > 0
            self._elapsed = elapsed / self.world.size
        value = loss_sum / max(tokens, 1)
        if not math.isfinite(value):
            err = TrainingError(
                f"loss became {value} at step {self.state.global_step + 1}; nothing was saved "
                "from this step", "lower train.lr or set train.clip; resume from last/ with "
                "--resume RUN --set train.lr=...")
            err.every_rank = True
            raise err
        for p in self.module.parameters():
            if p.grad is not None:
                p.grad.div_(max(tokens, 1))
        if self.cfg.clip:
            nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.clip)
        self._set_lr(self._scheduled_lr())
        self.opt.step()
        self.carry = carry
        return value, tokens

    def _evaluate(self, scheduled: bool = True) -> bool:
        """Validate, log, keep best; returns True when early stopping says stop.

        An unscheduled evaluation (at a max_steps/max_minutes stop) is logged and may
        update best/, but the plateau schedule and early stopping see only scheduled
        ones, so a run stopped there and resumed goes on as if it had never stopped.
        With several ranks, rank 0 decides and the others take its outcome.
        """
        stop = self._evaluate_here(scheduled) if self.world.main else False
        if not self.world.parallel:
            return stop
        from seqtool.distributed import broadcast

        st = self.state
        shared = ("lr", "best", "best_step", "bad_evals", "history")
        stop, values = broadcast((stop, {k: getattr(st, k) for k in shared})
                                 if self.world.main else None)
        for k, v in values.items():
            setattr(st, k, v)
        return bool(stop)

    def _evaluate_here(self, scheduled: bool) -> bool:
        cfg, st = self.cfg, self.state
        metrics = evaluate_loss(self.module, self.data.valid_batches(), self.device,
                                cfg.precision)
        record: dict[str, Any] = {
            "step": st.global_step, "epoch": st.epoch + st.step_in_epoch
            / max(1, self._steps_per_epoch()), "tokens": st.tokens_seen,
            "elapsed_s": st.elapsed_s, "lr": st.lr,
            "valid_loss": metrics["loss"], "valid_ppl": metrics["ppl"],
            **{f"valid_{k}": v for k, v in metrics.items() if k not in ("loss", "ppl", "tokens")}}
        record.update({f"valid_{k}": v for k, v in self._extra_metrics().items()})
        score = record[self.data.metric]
        best_seen = self._best_seen()
        if scheduled:
            if self._beats(score, st.best):
                st.best, st.best_step, st.bad_evals = score, st.global_step, 0
            else:
                st.bad_evals += 1
                if cfg.schedule == "plateau":
                    st.lr *= cfg.lr_decay
        better = self._beats(score, best_seen)
        record["best"] = score if better else best_seen
        st.history.append(record)
        if better:
            self.save("best", None)
        if cfg.keep_last:
            self._keep_step_checkpoint()
        append_record(self.run_dir / METRICS_FILE, record)
        self.reporter.on_eval(record)
        return scheduled and bool(cfg.patience) and st.bad_evals >= cfg.patience

    def _keep_step_checkpoint(self) -> None:
        """RUN/ckpt-<step>/ (weights only, written atomically), then the oldest beyond
        train.keep_last removed: a failed write never costs an older one."""
        from seqtool.checkpoint import prune_step_checkpoints, step_checkpoint_name

        self.save(step_checkpoint_name(self.state.global_step), None)
        prune_step_checkpoints(self.run_dir, self.cfg.keep_last)

    def _extra_metrics(self) -> dict[str, float]:
        """The data's own validation metrics (e.g. BLEU), computed in eval mode."""
        hook = getattr(self.data, "extra_metrics", None)
        if hook is None:
            return {}
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad(), autocast(self.device, self.cfg.precision):
                return dict(hook(self.module, self.device))
        finally:
            self.module.train(was_training)

    def _beats(self, score: float, other: float | None) -> bool:
        return other is None or (score > other if self.data.higher_is_better else score < other)

    def _best_seen(self) -> float | None:
        """Best score of every evaluation so far, scheduled or not."""
        scores = [r[self.data.metric] for r in self.state.history]
        if not scores:
            return None
        return max(scores) if self.data.higher_is_better else min(scores)

    def _save_last(self) -> None:
        snapshot = self.training_snapshot()  # every rank: a collective with several
        if self.world.main:
            self.save("last", snapshot)

    def run(self) -> dict[str, Any]:
        """Train to the end (or a stop); with several ranks, a rank whose peer died or
        went silent ends with PeerLost instead of waiting for ever."""
        if not self.world.parallel:
            return self._run()
        from seqtool.distributed import is_peer_failure, peer_lost

        with _stop_after_the_step(self):
            try:
                return self._run()
            except RuntimeError as exc:
                if is_peer_failure(exc):
                    raise peer_lost(exc, self.world, self.cfg.dist_timeout) from None
                raise

    def _run(self) -> dict[str, Any]:
        keep_freed_memory()  # no page faults on each step's fresh buffers (runtime.py)
        cfg, st = self.cfg, self.state
        self.module.to(self.device).train()
        if self.world.parallel:
            from seqtool.distributed import wrap

            self.model = wrap(self.module, self.device)
        steps_per_epoch = self._steps_per_epoch()
        total_steps = cfg.epochs * steps_per_epoch
        if cfg.max_steps:
            total_steps = min(total_steps, cfg.max_steps)
        self.reporter.on_start({"total_steps": total_steps, "start_step": st.global_step,
                                "steps_per_epoch": steps_per_epoch,
                                "metric": self.data.metric})
        clock = _Window(time.perf_counter() - st.elapsed_s, total_steps)
        self._clock_start = clock.start
        stop_reason = ""  # a finished run goes on when --resume raised train.epochs
        if st.done and cfg.patience and st.bad_evals >= cfg.patience:
            stop_reason = "early stopping"
        try:
            while not stop_reason and st.epoch < cfg.epochs:
                stop_reason, completed = self._run_epoch(steps_per_epoch, clock)
                with uninterruptible():
                    if completed:
                        st.epoch += 1
                        st.step_in_epoch = 0
                        self.carry = None
                        if not cfg.eval_every and self._evaluate():
                            stop_reason = "early stopping"
                    elif ((not cfg.eval_every or st.global_step % cfg.eval_every)
                          and stop_reason in ("max_steps", "max_minutes")):
                        self._evaluate(scheduled=False)  # stopped mid-epoch: log where
                    self._save_last()
            stop_reason = stop_reason or "finished"
            st.done = stop_reason in ("finished", "early stopping")
            if st.done:
                self._save_last()
        except KeyboardInterrupt:
            hint = f"resume with: {self.resume_command} --resume {self.run_dir}"
            self._save_last()
            err = Interrupted(f"interrupted at step {st.global_step}; saved {self.run_dir}/last",
                              hint)
            err.every_rank = True
            raise err from None
        summary = {"stop_reason": stop_reason, "steps": st.global_step,
                   "tokens_seen": st.tokens_seen, "elapsed_s": st.elapsed_s,
                   "best": self._best_seen(), "metric": self.data.metric,
                   "run_dir": str(self.run_dir)}
        self.reporter.on_end(summary)
        return summary

    def _run_epoch(self, steps_per_epoch: int, clock: _Window) -> tuple[str, bool]:
        """The rest of the current epoch, from st.step_in_epoch; returns the stop reason
        ("" for none) and whether the epoch ran to its end (a stop at its last step
        still closes it)."""
        st = self.state
        stop_reason = ""
        groups = _groups(self.data.train_batches(st.epoch), self.cfg.accum_steps,
                         skip=st.step_in_epoch * self.cfg.accum_steps)
        for group in groups:
            with uninterruptible():  # a signal waits for the step and its evaluation
                self._step_rng = self._rng_state()
                loss, tokens = self._train_step(group)
                st.step_in_epoch += 1
                st.global_step += 1
                self._step_rng = None
                st.tokens_seen += tokens
                st.elapsed_s = clock.add(loss, tokens)
                if self.world.parallel:
                    st.elapsed_s = self._elapsed  # the same on every rank: the same stops
                if st.global_step % self.cfg.log_every == 0 or st.global_step == clock.total_steps:
                    stats = clock.report(st, self._scheduled_lr())
                    if self.world.main:
                        append_record(self.run_dir / TRAIN_LOG_FILE, stats)
                    self.reporter.on_step(stats)
                if self._stop_all:  # a signal reached some rank: all stop after this step
                    raise KeyboardInterrupt
                stop_reason = self._stop_after_step(stop_reason)
            if stop_reason and st.step_in_epoch < steps_per_epoch:
                return stop_reason, False  # at the epoch's last step, close the epoch first
        return stop_reason, True

    def _stop_after_step(self, stop_reason: str) -> str:
        """The evaluation every eval_every steps (saving last/), and the step and time
        limits: the reason to stop, or ''."""
        cfg, st = self.cfg, self.state
        if cfg.eval_every and st.global_step % cfg.eval_every == 0:
            if self._evaluate():
                stop_reason = "early stopping"
            self._save_last()
        if cfg.max_steps and st.global_step >= cfg.max_steps:
            stop_reason = stop_reason or "max_steps"
        if cfg.max_minutes and st.elapsed_s >= cfg.max_minutes * 60:
            stop_reason = stop_reason or "max_minutes"
        return stop_reason


def _groups(batches: Iterable[dict[str, Tensor]], size: int, skip: int = 0
            ) -> Iterable[list[dict[str, Tensor]]]:
    """Consecutive groups of `size` batches after the first `skip` (the last may be
    shorter: the end of the epoch)."""
    group: list[dict[str, Tensor]] = []
    for i, batch in enumerate(batches):
        if i < skip:
            continue
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


@contextlib.contextmanager
def _stop_after_the_step(trainer: Trainer) -> Any:
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
        trainer._stop_asked = True

    old = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


class _Window:
    """Training time since the run's start (elapsed time of a resumed run included)
    and the mean loss and tokens/s since the last progress report."""

    def __init__(self, start: float, total_steps: int) -> None:
        self.start, self.total_steps = start, total_steps
        self.tokens, self.since, self.loss, self.steps = 0, time.perf_counter(), 0.0, 0

    def add(self, loss: float, tokens: int) -> float:
        """Count one step; the run's elapsed seconds."""
        self.tokens += tokens
        self.loss += loss
        self.steps += 1
        return time.perf_counter() - self.start

    def report(self, st: TrainerState, lr: float) -> dict[str, Any]:
        """The progress event for the steps since the last one (then starts a new window)."""
        now = time.perf_counter()
        mean = self.loss / self.steps
        stats = {"step": st.global_step, "total_steps": self.total_steps,
                 "epoch": st.epoch + 1, "loss": mean, "ppl": math.exp(min(mean, 50.0)),
                 "lr": lr, "tokens": st.tokens_seen,
                 "tokens_per_s": self.tokens / max(now - self.since, 1e-9),
                 "elapsed_s": st.elapsed_s}
        self.tokens, self.since, self.loss, self.steps = 0, now, 0.0, 0
        return stats


def _structure(carry: Any) -> Any:
    if carry is None:
        return None
    if isinstance(carry, Tensor):
        return "t"
    return [_structure(c) for c in carry]


def _rebuild(structure: Any, flat: list[Tensor]) -> Any:
    if structure is None:
        return None
    if structure == "t":
        return flat.pop(0)
    return tuple(_rebuild(s, flat) for s in structure)


def _flatten(carry: Any) -> list[Tensor]:
    if carry is None:
        return []
    if isinstance(carry, Tensor):
        return [carry]
    return [t for c in carry for t in _flatten(c)]
