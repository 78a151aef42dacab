"""What the training loop tells the outside: the Reporter protocol (the CLI's rich
progress bar, TensorBoard, nothing), several of them at once, and the window of
steps a progress event sums up."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from seqtool.trainstate import TrainerState


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


class Window:
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
