"""An RNN in plain NumPy that learns to add two 8-bit numbers, one bit per step.

The exercise the course starts with (after A. Trask, "Anyone can learn to code
an LSTM-RNN in Python", 2015). At step t the network reads bit t of `a` and of
`b`, least significant first, and must output bit t of `a + b`; the carry has to
travel through the hidden state, so the network has to learn to remember.

    h_t = f(x_t W_x + h_{t-1} W_h + b_h)          f: sigmoid, tanh or relu
    z_t = h_t W_y + b_y,  p_t = sigmoid(z_t)      p_t: probability that bit t of a+b is 1
    L   = -sum_t [y_t log p_t + (1 - y_t) log(1 - p_t)]   cross-entropy over the 8 bits

Cross-entropy rather than squared error: its gradient at the output is simply
p_t - y_t. Squared error multiplies that by p_t (1 - p_t), which vanishes once
the output saturates and so hides what the hidden layer does (a ReLU network
whose hidden state blows up then shows small gradients, not an explosion).

Training takes one random pair per step and updates every weight by plain
gradient descent, the gradient coming from backpropagation through time
(`backward`, written out line by line). Nothing here uses torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

BITS = 8
MAX_OPERAND = 2 ** (BITS - 1)  # a, b < 128, so a + b < 256 fits in 8 bits
ACTIVATIONS = ("sigmoid", "tanh", "relu")
INITS = ("normal", "xavier", "he")
WEIGHTS = ("W_x", "W_h", "b_h", "W_y", "b_y")
Params = dict[str, np.ndarray]


@dataclass(frozen=True, kw_only=True)
class AdditionConfig:
    activation: str = "sigmoid"  # hidden nonlinearity f
    init: str = "normal"  # normal: N(0, 1); xavier: N(0, 1/fan_in); he: N(0, 2/fan_in)
    lr: float = 0.1  # learning rate of plain gradient descent
    hidden: int = 16  # hidden units
    steps: int = 10_000  # training steps, one addition each
    seed: int = 0  # seeds the initial weights, the training pairs and the test pairs
    clip: float = 0.0  # rescale the gradient to at most this L2 norm (0 = off)
    window: int = 100  # the loss curve is the mean loss over windows of this many steps
    test_size: int = 1_000  # held-out additions for the accuracy


# --------------------------------------------------------------------------- pieces
def sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # = 1 / (1 + exp(-a)), without overflow


@dataclass(frozen=True)
class Activation:
    """f and its derivative, the derivative written in terms of the output h = f(a)."""

    f: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray], np.ndarray]


ACTIVATION = {
    "sigmoid": Activation(sigmoid, lambda h: h * (1.0 - h)),
    "tanh": Activation(np.tanh, lambda h: 1.0 - h * h),
    "relu": Activation(lambda a: np.maximum(a, 0.0), lambda h: (h > 0).astype(h.dtype)),
}


def to_bits(n: np.ndarray) -> np.ndarray:
    """Integers (B,) -> bits (BITS, B), least significant bit first."""
    return (n[None, :] >> np.arange(BITS)[:, None]) & 1


def from_bits(bits: np.ndarray) -> np.ndarray:
    """Bits (BITS, B), least significant first -> integers (B,)."""
    return (bits.astype(np.int64) << np.arange(BITS)[:, None]).sum(0)


def make_batch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Operands (B,) -> inputs x (T, B, 2) and targets y (T, B, 1), T = BITS."""
    x = np.stack([to_bits(a), to_bits(b)], axis=2).astype(np.float64)  # (T, B, 2)
    y = to_bits(a + b)[:, :, None].astype(np.float64)  # (T, B, 1)
    return x, y


def init_params(hidden: int, init: str, rng: np.random.Generator) -> Params:
    """Weights from N(0, s^2) with s = 1 (normal), sqrt(1/fan_in) (xavier) or
    sqrt(2/fan_in) (he); biases start at zero."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")

    def draw(fan_in: int, fan_out: int) -> np.ndarray:
        scale = {"normal": 1.0, "xavier": np.sqrt(1 / fan_in), "he": np.sqrt(2 / fan_in)}[init]
        return rng.standard_normal((fan_in, fan_out)) * scale

    return {"W_x": draw(2, hidden), "W_h": draw(hidden, hidden), "b_h": np.zeros(hidden),
            "W_y": draw(hidden, 1), "b_y": np.zeros(1)}


# --------------------------------------------------------------------------- the network
def forward(p: Params, x: np.ndarray, act: Activation) -> tuple[np.ndarray, np.ndarray]:
    """x (T, B, 2) -> hidden states hs (T+1, B, H), hs[0] = 0, and logits zs (T, B, 1)."""
    steps, batch, _ = x.shape
    hs = np.zeros((steps + 1, batch, p["W_h"].shape[0]))
    zs = np.zeros((steps, batch, 1))
    for t in range(steps):
        hs[t + 1] = act.f(x[t] @ p["W_x"] + hs[t] @ p["W_h"] + p["b_h"])  # (B, H)
        zs[t] = hs[t + 1] @ p["W_y"] + p["b_y"]  # (B, 1)
    return hs, zs


def loss_fn(zs: np.ndarray, y: np.ndarray) -> float:
    """Cross-entropy summed over the bits, averaged over the batch.

    -[y log p + (1-y) log(1-p)] with p = sigmoid(z) is log(1 + e^z) - y z."""
    return float((np.logaddexp(0.0, zs) - y * zs).sum() / y.shape[1])


def backward(p: Params, x: np.ndarray, y: np.ndarray, hs: np.ndarray, zs: np.ndarray,
             act: Activation) -> Params:
    """Backpropagation through time: dL/dw for every weight, L as in `loss_fn`."""
    g = {k: np.zeros_like(v) for k, v in p.items()}
    dh_next = np.zeros_like(hs[0])  # dL/dh_t that flows back from step t+1, (B, H)
    for t in reversed(range(x.shape[0])):
        dz = (sigmoid(zs[t]) - y[t]) / y.shape[1]  # dL/dz_t, (B, 1)  # dL/d(output logit), (B, 1)
        g["W_y"] += hs[t + 1].T @ dz  # (H, 1)
        g["b_y"] += dz.sum(0)
        dh = dz @ p["W_y"].T + dh_next  # dL/dh_t: from the output and from the future
        da = dh * act.grad(hs[t + 1])  # dL/d(pre-activation), (B, H)
        g["W_x"] += x[t].T @ da  # (2, H)
        g["W_h"] += hs[t].T @ da  # (H, H)
        g["b_h"] += da.sum(0)
        dh_next = da @ p["W_h"].T  # on to step t-1
    return g


def grad_norm(g: Params) -> float:
    return float(np.sqrt(sum((v * v).sum() for v in g.values())))


def predict(p: Params, a: np.ndarray, b: np.ndarray, act: Activation) -> np.ndarray:
    """The network's sums for operands a, b (B,)."""
    x, _ = make_batch(a, b)
    _, zs = forward(p, x, act)
    return from_bits(zs[:, :, 0] > 0)  # p > 0.5


# --------------------------------------------------------------------------- training
@dataclass
class AdditionRun:
    config: AdditionConfig
    losses: np.ndarray  # (steps_done,) loss of each training step
    grad_norms: np.ndarray  # (steps_done,) gradient norm before clipping
    params: Params
    accuracy: float  # fraction of held-out additions with all 8 bits right
    stopped_at: int | None = None  # step where the loss or gradient stopped being finite
    curve: list[float] = field(default_factory=list)  # windowed mean loss


def split_pairs(seed: int, test_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All (a, b) pairs as indices a * 128 + b: a training pool and held-out test pairs."""
    rng = np.random.default_rng([seed, 2])
    order = rng.permutation(MAX_OPERAND * MAX_OPERAND)
    return order[test_size:], order[:test_size]


def accuracy(p: Params, pairs: np.ndarray, act: Activation) -> float:
    a, b = pairs // MAX_OPERAND, pairs % MAX_OPERAND
    with np.errstate(over="ignore", invalid="ignore"):
        return float((predict(p, a, b, act) == a + b).mean())


def train(cfg: AdditionConfig) -> AdditionRun:
    """Gradient descent, one random addition per step (never a held-out one)."""
    if cfg.activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {cfg.activation!r}; valid: {', '.join(ACTIVATIONS)}")
    act = ACTIVATION[cfg.activation]
    p = init_params(cfg.hidden, cfg.init, np.random.default_rng([cfg.seed, 0]))
    pool, test = split_pairs(cfg.seed, cfg.test_size)
    draws = np.random.default_rng([cfg.seed, 1]).choice(pool, size=cfg.steps)
    xs, ys = make_batch(draws // MAX_OPERAND, draws % MAX_OPERAND)  # (T, steps, 2), (T, steps, 1)
    losses, norms = np.full(cfg.steps, np.nan), np.full(cfg.steps, np.nan)
    stopped = None
    with np.errstate(over="ignore", invalid="ignore"):  # relu may overflow: caught below
        for step in range(cfg.steps):
            x, y = xs[:, step: step + 1], ys[:, step: step + 1]  # one addition, B = 1
            hs, zs = forward(p, x, act)  # 1. forward through the 8 bits
            losses[step] = loss_fn(zs, y)
            g = backward(p, x, y, hs, zs, act)  # 2. backward through time
            norms[step] = norm = grad_norm(g)
            if not (np.isfinite(losses[step]) and np.isfinite(norm)):
                stopped = step  # the run blew up; nothing sensible can follow
                break
            scale = cfg.clip / norm if cfg.clip and norm > cfg.clip else 1.0  # 3. clipping
            for k in p:
                p[k] -= cfg.lr * scale * g[k]  # 4. gradient descent
    done = cfg.steps if stopped is None else stopped + 1
    run = AdditionRun(cfg, losses[:done], norms[:done], p, accuracy(p, test, act), stopped)
    run.curve = windowed(run.losses, cfg.window)
    return run


def windowed(values: np.ndarray, window: int) -> list[float]:
    """Mean of each window of `window` steps (the last one may be shorter)."""
    return [float(np.mean(values[i: i + window])) for i in range(0, len(values), window)]
