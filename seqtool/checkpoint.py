"""Checkpoint folders: safetensors + JSON + tokenizer + model card. No pickle.

    <run>/best/, <run>/last/   config.json, model.safetensors, tokenizer files,
                               MODEL_CARD.md; a translation model with two
                               vocabularies keeps the target's tokenizer in tgt/
    <run>/last/ also           trainer_state.json, optimizer.safetensors, rng.safetensors
    <run>/ckpt-<step>/         with train.keep_last = N: the weights of the last N
                               evaluations, for averaging (seqtool average)
    <run>/metrics.jsonl        one line per evaluation

Every folder is written to a temporary sibling and swapped in with os.replace,
so a crash never leaves half a checkpoint. Loading never unpickles.

An int8 folder (`seqtool export --int8`) says `"quantized": "int8"` in config.json
and holds int8 weights with fp32 scales (layers/int8.py); loading builds the
model, converts it to the int8 modules and then reads the weights into them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqtool.version import __version__
from seqtool.errors import CheckpointError, ConfigError

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
STATE_FILE = "trainer_state.json"
CARD_FILE = "MODEL_CARD.md"
TGT_DIR = "tgt"  # the target side's tokenizer files (translation, separate vocabularies)
STEP_PREFIX = "ckpt-"  # <run>/ckpt-<step>/: train.keep_last's checkpoints


def atomic_folder_write(folder: Path, write: Any) -> None:
    """Call write(tmp_folder), then swap tmp_folder into place atomically.

    Signals wait for the swap (folders.uninterruptible); a kill -9 between its two
    renames is finished by folders.recover; a failed write (disk full, read-only)
    raises one CheckpointError and leaves the previous folder as it was."""
    from seqtool.folders import recover, uninterruptible, write_error

    folder = Path(folder)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    old = folder.parent / f".{folder.name}.old-{os.getpid()}"
    with uninterruptible():
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            recover(folder)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            try:
                write(tmp)
                for f in tmp.rglob("*"):  # data on disk before the rename
                    if f.is_file():
                        with open(f, "rb") as fh:
                            os.fsync(fh.fileno())
                if folder.exists():
                    os.replace(folder, old)
                os.replace(tmp, folder)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            raise write_error(folder, exc) from None
        except Exception as exc:  # safetensors reports a failed write as its own error
            if type(exc).__name__ != "SafetensorError":
                raise
            raise write_error(folder, OSError(0, str(exc).splitlines()[0][:120])) from None


def step_checkpoint_name(step: int) -> str:
    return f"{STEP_PREFIX}{step}"


def step_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """The run's complete ckpt-<step>/ folders, oldest first."""
    found = []
    for p in Path(run_dir).glob(f"{STEP_PREFIX}*"):
        step = p.name[len(STEP_PREFIX):]
        if step.isdigit() and (p / CONFIG_FILE).is_file():
            found.append((int(step), p))
    return sorted(found)


def prune_step_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` ckpt-<step>/ folders; each is renamed away
    first, so none is ever seen half deleted. Returns the removed ones."""
    old = step_checkpoints(run_dir)[:-keep] if keep > 0 else []
    for _, folder in old:
        gone = folder.parent / f".{folder.name}.old-{os.getpid()}"
        os.replace(folder, gone)
        shutil.rmtree(gone, ignore_errors=True)
    return [folder for _, folder in old]


@dataclass
class Loaded:
    model: Any  # nn.Module, in eval mode
    config: Any  # RunConfig
    tokenizer: Any  # the (source) tokenizer
    meta: dict[str, Any]  # the whole config.json
    folder: Path
    tgt_tokenizer: Any = None  # translation: the target's; otherwise the same as tokenizer

    def __post_init__(self) -> None:
        if self.tgt_tokenizer is None:
            self.tgt_tokenizer = self.tokenizer


def save_checkpoint(folder: Path, *, model: Any, config: Any, tokenizer: Any,
                    card: str, extra_meta: dict[str, Any] | None = None,
                    training: dict[str, Any] | None = None, half: bool = False,
                    tgt_tokenizer: Any = None) -> None:
    """Write a checkpoint folder. `training` = {"state", "optimizer", "rng"} for resumable ones.

    A translation model gets `tgt_tokenizer` (the same object for one joint
    vocabulary); its vocab_size is stored as [source, target]."""
    import copy

    from safetensors.torch import save_file, save_model

    from seqtool.models.registry import spec_for

    two_sided = spec_for(config.task, config.model.arch).two_vocabularies
    if two_sided and tgt_tokenizer is None:
        raise ValueError("a translation checkpoint needs tgt_tokenizer (pass the tokenizer "
                         "itself for a joint vocabulary)")
    separate = two_sided and tgt_tokenizer is not tokenizer
    vocab: Any = tokenizer.vocab_size
    meta_tok: dict[str, Any] = {"tokenizer_kind": tokenizer.kind}
    if two_sided:
        vocab = [tokenizer.vocab_size, tgt_tokenizer.vocab_size]
        meta_tok["tgt_tokenizer_kind"] = tgt_tokenizer.kind
    meta = {"format_version": FORMAT_VERSION, "seqtool_version": __version__,
            "kind": model.kind, "vocab_size": vocab, **meta_tok, **config.to_dict(),
            **(extra_meta or {})}

    def write(tmp: Path) -> None:
        m = model
        # A copy for fp16, and on a GPU, where cuDNN packs an RNN's weights into one
        # buffer that safetensors refuses to save as separate tensors (ties are kept).
        if getattr(model, "quantized", None) and half:
            raise ValueError("an int8 model is saved as it is (no --half)")
        if half or any(p.device.type != "cpu" for p in model.parameters()):
            m = copy.deepcopy(model).cpu()
            if half:
                m.half()
        save_model(m, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), "utf-8")
        tokenizer.save(tmp)
        if separate:
            (tmp / TGT_DIR).mkdir()
            tgt_tokenizer.save(tmp / TGT_DIR)
        (tmp / CARD_FILE).write_text(card, "utf-8")
        if training is not None:
            (tmp / STATE_FILE).write_text(json.dumps(training["state"], indent=2), "utf-8")
            save_file(training["optimizer"], str(tmp / OPTIMIZER_FILE),
                      metadata={"param_groups": json.dumps(training["param_groups"])})
            save_file(training["rng"], str(tmp / RNG_FILE))

    atomic_folder_write(folder, write)


UNTRUSTED_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".joblib", ".npy",
                      ".npz")  # formats that may hold a pickle: never read, refused
PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive, a raw pickle


def resolve_folder(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder (its best/, else last/), checked by
    check_untrusted before anything in it is read."""
    from seqtool.folders import recover

    p = Path(path)
    for f in (p, p / "best", p / "last"):  # a swap cut short by kill -9
        with contextlib.suppress(OSError):
            recover(f)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}",
                              "give a checkpoint folder or a run folder (seqtool train ... --out)")
    if p.is_file():
        raise CheckpointError(f"{p} is a file; a seqtool checkpoint is a folder",
                              f"give the folder that holds {CONFIG_FILE} and {WEIGHTS_FILE}")
    found = p if (p / CONFIG_FILE).exists() else None
    for sub in ("best", "last"):
        if found is None and (p / sub / CONFIG_FILE).exists():
            found = p / sub
    if found is None:
        raise CheckpointError(f"no seqtool checkpoint in {p} (no {CONFIG_FILE})",
                              "give a checkpoint folder or a run folder")
    check_untrusted(found)
    return found


def check_untrusted(folder: Path) -> None:
    """Refuse a folder holding a file that could carry a pickle (a .pt, .pkl ...; a
    model.safetensors that is really a torch.save file) or a link leading out of it:
    seqtool never unpickles, and never reads outside the checkpoint it was given."""
    root = folder.resolve()
    for f in sorted(folder.rglob("*")):
        if f.is_symlink() and not f.resolve().is_relative_to(root):
            raise CheckpointError(f"{f} is a link to {os.readlink(f)}, outside the checkpoint",
                                  "copy the file into the folder instead of linking it")
        if f.suffix.lower() in UNTRUSTED_SUFFIXES:
            raise CheckpointError(f"refusing {f}: a {f.suffix} file may hold a pickle, which "
                                  "could run code; seqtool never loads one",
                                  "remove it; seqtool checkpoints hold only safetensors, "
                                  "JSON and tokenizer files")
    weights = folder / WEIGHTS_FILE
    with contextlib.suppress(OSError), open(weights, "rb") as fh:
        head = fh.read(9)  # safetensors: an 8-byte header length, then the JSON header
        if head[8:9] != b"{" and head.startswith(PICKLE_MAGIC):
            raise CheckpointError(f"refusing {weights}: it is a pickle (torch.save) file, "
                                  "not safetensors, and loading it could run code",
                                  "use a checkpoint written by seqtool (safetensors only)")


def read_meta(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / CONFIG_FILE).read_text("utf-8"))
        version = int(meta["format_version"])
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{folder / CONFIG_FILE} is damaged",
                              "retrain or re-download the checkpoint") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format {version} is newer than this seqtool "
                              f"understands ({FORMAT_VERSION})", "upgrade seqtool")
    return meta


def load_checkpoint(path: str | Path, expect_kind: str | tuple[str, ...] | None = None,
                    device: str = "cpu") -> Loaded:
    """Load a checkpoint folder (never unpickles). Raises CheckpointError."""
    from seqtool.data.tokenizer import load_tokenizer
    from seqtool.models.registry import spec_for

    folder = resolve_folder(path)
    meta = read_meta(folder)
    kind = meta.get("kind")
    kinds = (expect_kind,) if isinstance(expect_kind, str) else expect_kind
    if kinds and kind not in kinds:
        raise CheckpointError(f"{folder} is a {kind!r} checkpoint, not {' or '.join(kinds)}",
                              f"use a {' or '.join(kinds)} model here")
    config = _read_config(folder, meta)
    tokenizer = load_tokenizer(folder)
    tgt_tokenizer = tokenizer
    sizes: Any = tokenizer.vocab_size
    if kind != config.task:
        raise CheckpointError(f"{folder / CONFIG_FILE} says kind {kind!r} but task "
                              f"{config.task!r}", "the checkpoint is damaged")
    spec = spec_for(config.task, config.model.arch)
    if spec.two_vocabularies:  # [source, target]; tgt/ holds a separate target tokenizer
        if (folder / TGT_DIR).is_dir():
            tgt_tokenizer = load_tokenizer(folder / TGT_DIR)
        sizes = (tokenizer.vocab_size, tgt_tokenizer.vocab_size)
    stored = meta.get("vocab_size")
    if (list(sizes) if isinstance(sizes, tuple) else sizes) != stored:
        raise CheckpointError(f"tokenizer and model disagree on the vocabulary size (tokenizer "
                              f"files {list(sizes) if isinstance(sizes, tuple) else sizes}, "
                              f"{CONFIG_FILE} {stored})",
                              "the checkpoint folder mixes files from different runs")
    try:
        model = spec.build(config.model, sizes)
    except ConfigError as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE}: {exc.message}",
                              "the checkpoint is damaged or from another seqtool") from None
    quantized = meta.get("quantized")
    if quantized:  # the int8 modules first: the file holds their tensors
        from seqtool.layers.int8 import METHODS, quantize_model

        if quantized not in METHODS or device != "cpu":
            raise CheckpointError(f"{folder} holds a {quantized!r} model, which runs on the "
                                  "CPU with this seqtool's kernels",
                                  "use --device cpu (or load the fp32 checkpoint it came from)")
        quantize_model(model, quantized)
    _load_weights(model, folder / WEIGHTS_FILE, device)
    model.to(device).eval()
    return Loaded(model, config, tokenizer, meta, folder, tgt_tokenizer)


def _read_config(folder: Path, meta: dict[str, Any]) -> Any:
    """The RunConfig stored in config.json, checked as a TOML config is."""
    from seqtool.configfile import build_config

    try:
        return build_config({**{k: meta[k] for k in ("task", "data", "tokenizer", "model",
                                                      "train")},
                             **({"search": meta["search"]} if "search" in meta else {})})
    except KeyError as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE} lacks {exc}", "the checkpoint is damaged"
                              ) from None
    except ConfigError as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE}: {exc.message}",
                              "the checkpoint is damaged or from another seqtool") from None


def _load_weights(model: Any, weights: Path, device: str) -> None:
    """model.safetensors into `model`: shapes compared from the header first, then every
    key must be there and nothing else."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_model

    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing", "the checkpoint is incomplete")
    try:
        with safe_open(str(weights), "pt") as f:  # header only: compare shapes first
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        wrong = sorted(k for k in shapes.keys() & expected.keys() if shapes[k] != expected[k])
        if wrong:
            raise CheckpointError(
                f"weights do not match the model: shapes differ for {wrong[:5]} (e.g. "
                f"{wrong[0]}: file {list(shapes[wrong[0]])}, model {list(expected[wrong[0]])})",
                f"{CONFIG_FILE} and {WEIGHTS_FILE} come from different architectures")
        missing, unexpected = load_model(model, str(weights), strict=False, device=device)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        first = str(exc).splitlines()[0][:160]
        raise CheckpointError(f"cannot read {weights}: {first}",
                              "the file is truncated or corrupted; use another checkpoint"
                              ) from None
    if missing or unexpected:
        raise CheckpointError(f"weights do not match the model: missing {sorted(missing)[:5]}, "
                              f"unexpected {sorted(unexpected)[:5]}",
                              "the checkpoint was written by another architecture")


def optimizer_to_tensors(opt: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Optimizer state as flat tensors + JSON param groups (for safetensors)."""
    import torch

    sd = opt.state_dict()
    flat = {}
    for idx, st in sd["state"].items():
        for name, value in st.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            flat[f"{idx}.{name}"] = t.detach().cpu().contiguous()
    return flat, sd["param_groups"]


def optimizer_from_tensors(opt: Any, flat: dict[str, Any], groups: list[dict[str, Any]]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, t in flat.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = t
    opt.load_state_dict({"state": state, "param_groups": groups})


def load_training_state(folder: Path) -> dict[str, Any]:
    """trainer_state, optimizer tensors, param groups and RNG of a last/ folder."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        state = json.loads((folder / STATE_FILE).read_text("utf-8"))
        with safe_open(str(folder / OPTIMIZER_FILE), "pt") as f:
            groups = json.loads(f.metadata()["param_groups"])
        return {"state": state, "optimizer": load_file(str(folder / OPTIMIZER_FILE)),
                "param_groups": groups, "rng": load_file(str(folder / RNG_FILE))}
    except (OSError, ValueError, KeyError, SafetensorError):
        raise CheckpointError(f"no resumable training state in {folder}",
                              "resume from a run folder whose last/ was written by train"
                              ) from None
