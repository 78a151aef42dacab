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
import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seqtool.config import TrainConfig
from seqtool.data.chunks import chunked
from seqtool.distributed import SINGLE, World, signals_only_ask
from seqtool.errors import Interrupted, TrainingError
from seqtool.folders import uninterruptible
from seqtool.history import METRICS_FILE, TRAIN_LOG_FILE, append_record
from seqtool.metrics import evaluate_loss  # the validation loss (named here: tests patch it)
from seqtool.models.base import LossResult
from seqtool.reporting import NullReporter, Reporter, Window
from seqtool.runtime import autocast, keep_freed_memory, to_device
from seqtool.trainstate import Resumable, TrainerState


class Trainer(Resumable):
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
        self._check_finite(value)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self._update(res.carry)
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
        self._check_finite(value)
        for p in self.module.parameters():
            if p.grad is not None:
                p.grad.div_(max(tokens, 1))
        self._update(carry)
        return value, tokens

    def _check_finite(self, value: float) -> None:
        """A NaN/inf loss stops the run before the update (every rank has the same
        value: it comes from the all-reduce)."""
        if not math.isfinite(value):
            err = TrainingError(
                f"loss became {value} at step {self.state.global_step + 1}; nothing was saved "
                "from this step", "lower train.lr or set train.clip; resume from last/ with "
                "--resume RUN --set train.lr=...")
            err.every_rank = True
            raise err

    def _update(self, carry: Any) -> None:
        """Clip, set the scheduled lr, step the optimizer, keep the step's carry."""
        if self.cfg.clip:
            nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.clip)
        self._set_lr(self._scheduled_lr())
        self.opt.step()
        self.carry = carry

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

    def _ask_stop(self) -> None:
        self._stop_asked = True

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

        with signals_only_ask(self._ask_stop):
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
        clock = Window(time.perf_counter() - st.elapsed_s, total_steps)
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

    def _run_epoch(self, steps_per_epoch: int, clock: Window) -> tuple[str, bool]:
        """The rest of the current epoch, from st.step_in_epoch; returns the stop reason
        ("" for none) and whether the epoch ran to its end (a stop at its last step
        still closes it)."""
        st = self.state
        stop_reason = ""
        done = st.step_in_epoch * self.cfg.accum_steps  # batches this epoch already ran
        groups = chunked(itertools.islice(self.data.train_batches(st.epoch), done, None),
                         self.cfg.accum_steps)
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
