"""`seqtool info` (model card, parameter counts, the run's validation curves) and
`seqtool export`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

STANDARD_KEYS = ("format_version", "seqtool_version", "kind", "vocab_size", "tokenizer_kind",
                 "task", "data", "tokenizer", "model", "train", "search")


def checkpoint_info(path: Path | None) -> dict[str, Any]:
    """`seqtool info`: the checkpoint at `path` (default: the shipped LM)."""
    from seqtool.checkpoint import load_checkpoint
    from seqtool.loading import DEFAULT_LM, shipped_model

    return loaded_info(load_checkpoint(path or shipped_model(DEFAULT_LM)))


def loaded_info(loaded: Any) -> dict[str, Any]:
    """Kind, vocabulary, parameter counts per component, files, metrics and the model
    card of a loaded checkpoint (what `seqtool info --json` prints)."""
    from seqtool.checkpoint import CARD_FILE
    from seqtool.models.base import count_parameters

    counts = count_parameters(loaded.model)
    files = {f.name: f.stat().st_size for f in sorted(loaded.folder.iterdir()) if f.is_file()}
    card_path = loaded.folder / CARD_FILE
    meta = loaded.meta
    return {"path": str(loaded.folder), "kind": meta["kind"],
            "seqtool_version": meta.get("seqtool_version"),
            "format_version": meta["format_version"], "vocab_size": meta["vocab_size"],
            "tokenizer": meta["tokenizer_kind"], "model": meta["model"],
            "parameters": counts, "total_parameters": sum(counts.values()),
            "weights_dtype": ("I8" if meta.get("quantized") else _weights_dtype(loaded.folder)),
            "files": files,
            "metrics": meta.get("metrics", {}),
            "card": card_path.read_text("utf-8") if card_path.is_file() else "",
            "history": run_curves(loaded.folder)}


def run_curves(folder: Path) -> dict[str, Any] | None:
    """The validation curves of the run a checkpoint folder belongs to (its
    metrics.jsonl), or None for a checkpoint outside a run folder."""
    from seqtool.history import find_history

    history = find_history(folder)
    if history is None:
        return None
    steps, loss = history.series("valid_loss")
    if not steps:
        return None
    curves: dict[str, Any] = {"run": str(history.run), "steps": [int(s) for s in steps],
                              "valid_loss": loss}
    bleu_steps, bleu = history.series("valid_bleu")
    if bleu and bleu_steps == steps:
        curves["valid_bleu"] = bleu
    return curves


def _weights_dtype(folder: Path) -> str:
    from safetensors import safe_open

    from seqtool.checkpoint import WEIGHTS_FILE

    with safe_open(str(folder / WEIGHTS_FILE), "pt") as f:
        keys = list(f.keys())
        return str(f.get_slice(keys[0]).get_dtype()) if keys else "?"


def export_checkpoint(source: Path, dest: Path, half: bool = False, int8: bool = False) -> int:
    """Write `dest` with weights, config, tokenizer and card only; returns its size in
    bytes. int8: dynamic int8 weights (layers/int8.py), flagged in config.json."""
    from seqtool.checkpoint import CARD_FILE, load_checkpoint, save_checkpoint
    from seqtool.errors import ConfigError

    if half and int8:
        raise ConfigError("--half and --int8 are two different exports", "pick one")
    loaded = load_checkpoint(source)
    if int8:
        from seqtool.loading import quantized

        if loaded.meta["kind"] not in ("lm", "translate", "chat"):
            raise ConfigError(f"--int8 exports language, translation and chat models, not "
                              f"{loaded.meta['kind']!r}", "drop --int8")
        quantized(loaded, "int8", "cpu")
    card = (loaded.folder / CARD_FILE).read_text("utf-8") if (loaded.folder / CARD_FILE
                                                               ).is_file() else ""
    extra = {k: v for k, v in loaded.meta.items() if k not in STANDARD_KEYS}
    if int8 or extra.get("quantized"):
        extra["quantized"] = "int8"
    save_checkpoint(Path(dest), model=loaded.model, config=loaded.config,
                    tokenizer=loaded.tokenizer, tgt_tokenizer=loaded.tgt_tokenizer, card=card,
                    extra_meta=extra, half=half)
    return sum(f.stat().st_size for f in Path(dest).iterdir())
