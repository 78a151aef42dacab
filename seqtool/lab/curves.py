"""The outcome of a training run, read from its loss curve by fixed criteria.

The same thresholds apply to every run; `CRITERIA` is the text `--help` shows.
The curve is the training loss averaged over windows of W steps (W = 100 by
default), so one point per window; `tail` is its last 30 %.

    diverged       a loss or gradient stopped being finite, or the gradient norm
                   went above GRAD_LIMIT (an explosion), at any step
    converged      the last point of the curve is below CONVERGED_LOSS;
                   steps_to_converge is the step where the curve went below it
                   for good (the end of the first window of that final stretch)
    oscillating    not the above, and in the tail the curve's relative standard
                   deviation is above OSCILLATION_STD while a least-squares line
                   through the tail falls by less than TREND_DROP of its mean
    not converged  everything else (still falling, or flat and quiet)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONVERGED_LOSS = 0.1  # cross-entropy summed over the 8 bits (chance level is 8 ln 2 = 5.5)
GRAD_LIMIT = 1e6  # gradient L2 norm (before clipping) that counts as an explosion
TAIL = 0.3  # the last 30 % of the curve
OSCILLATION_STD = 0.05  # relative standard deviation in the tail
TREND_DROP = 0.1  # a fall over the tail below 10 % of its mean is "no downward trend"
OUTCOMES = ("converged", "not converged", "diverged", "oscillating")

CRITERIA = (
    f"Outcome of a run, from its loss curve (mean loss per window of steps), the same "
    f"for every variant: diverged = a loss or gradient became NaN/inf or the gradient "
    f"norm (before clipping) exceeded {GRAD_LIMIT:g}; converged = the last point of the "
    f"curve is below {CONVERGED_LOSS:g} (steps to converge: where it went below for "
    f"good); oscillating = neither, and over the last {TAIL:.0%} of the curve its "
    f"standard deviation is above {OSCILLATION_STD:.0%} of its mean while a fitted "
    f"line falls by less than {TREND_DROP:.0%} of the mean; not converged = otherwise.")


@dataclass(frozen=True)
class Outcome:
    outcome: str  # one of OUTCOMES
    steps_to_converge: int | None
    tail_rel_std: float | None  # the statistics behind the verdict, for the record
    tail_drop: float | None  # fitted fall over the tail / its mean (negative: rising)
    max_grad_norm: float


def classify(curve: list[float], max_grad_norm: float, finite: bool, window: int) -> Outcome:
    """curve: mean loss per window; max_grad_norm: over all steps; finite: no NaN/inf seen."""
    c = np.asarray(curve, dtype=float)
    tail = c[int(len(c) * (1 - TAIL)):] if len(c) else c
    rel_std: float | None = None
    drop: float | None = None
    if len(tail) >= 2 and np.isfinite(tail).all() and tail.mean() > 0:
        rel_std = float(tail.std() / tail.mean())
        slope = np.polyfit(np.arange(len(tail)), tail, 1)[0]
        drop = float(-slope * (len(tail) - 1) / tail.mean())

    def result(outcome: str, steps: int | None = None) -> Outcome:
        return Outcome(outcome, steps, rel_std, drop, max_grad_norm)

    if not finite or not math.isfinite(max_grad_norm) or max_grad_norm > GRAD_LIMIT:
        return result("diverged")
    if len(c) and c[-1] < CONVERGED_LOSS:
        above = np.flatnonzero(c >= CONVERGED_LOSS)
        first_below = int(above[-1]) + 1 if len(above) else 0
        return result("converged", (first_below + 1) * window)
    if rel_std is not None and drop is not None and rel_std > OSCILLATION_STD \
            and drop < TREND_DROP:
        return result("oscillating")
    return result("not converged")
