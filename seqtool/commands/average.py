"""`seqtool average`: one checkpoint whose weights are the element-wise mean of
several checkpoints' (Joey NMT's and OpenNMT-py's `average_models`), usually a
run's last N ckpt-<step>/ folders (train.keep_last = N). The checkpoints must
share the task, the architecture ([model] table) and the tokenizer files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqtool.errors import CheckpointError, InputError

SAME_RUN_HINT = ("average checkpoints of one run: train with --set train.keep_last=N, then "
                 "seqtool average RUN --last N --out DIR")


def last_checkpoints(run: Path, n: int) -> list[Path]:
    """The run's newest `n` ckpt-<step>/ folders, oldest first."""
    from seqtool.checkpoint import step_checkpoints

    if not Path(run).is_dir():
        raise InputError(f"run folder not found: {run}", "give the folder seqtool train wrote")
    found = step_checkpoints(run)
    if len(found) < n:
        raise CheckpointError(f"{run} holds {len(found)} step checkpoints (ckpt-<step>/), "
                              f"fewer than --last {n}",
                              "train with --set train.keep_last=N, or give a smaller --last")
    return [p for _, p in found[-n:]]


def tokenizer_bytes(folder: Path) -> dict[str, bytes | None]:
    """The tokenizer files of a checkpoint folder (the target's in tgt/ too)."""
    from seqtool.checkpoint import TGT_DIR
    from seqtool.data.tokenizer import SPM_FILE, TOKENIZER_FILE

    names = [TOKENIZER_FILE, SPM_FILE, f"{TGT_DIR}/{TOKENIZER_FILE}", f"{TGT_DIR}/{SPM_FILE}"]
    return {n: (folder / n).read_bytes() if (folder / n).is_file() else None for n in names}


def difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first thing that keeps two checkpoints from being averaged (their metadata
    with `tokenizer_files` added), in words, or None."""
    for key in ("task", "kind", "vocab_size"):
        if a.get(key) != b.get(key):
            return f"{key} {a.get(key)!r} vs {b.get(key)!r}"
    ma, mb = a.get("model", {}), b.get("model", {})
    for key in sorted(set(ma) | set(mb)):
        if ma.get(key) != mb.get(key):
            return f"a different architecture: model.{key} {ma.get(key)!r} vs {mb.get(key)!r}"
    ta, tb = a["tokenizer_files"], b["tokenizer_files"]
    for name in ta:
        if ta[name] != tb[name]:
            return f"a different tokenizer: {name} differs"
    return None


def average_state_dicts(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The element-wise mean of each floating-point tensor (summed in float64, cast back
    to its dtype); other tensors are taken from the first."""
    import torch

    out = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            total = torch.zeros_like(first, dtype=torch.float64)
            for s in states:
                total += s[key].to(torch.float64)
            out[key] = (total / len(states)).to(first.dtype)
        else:
            out[key] = first.clone()
    return out


def average_checkpoints(paths: list[Path], out: Path, command: str = "") -> dict[str, Any]:
    """Write the average of `paths` (two or more checkpoint or run folders) to `out`;
    config and tokenizer are the last checkpoint's. Fails naming the first difference
    when two of them do not fit together."""
    from seqtool.checkpoint import load_checkpoint, read_meta, resolve_folder, save_checkpoint

    folders = [resolve_folder(p) for p in paths]
    if len(folders) < 2:
        raise InputError("averaging needs two or more checkpoints", SAME_RUN_HINT)
    if len({f.resolve() for f in folders}) < len(folders):
        raise InputError("the same checkpoint is given twice", "give each checkpoint once")
    if Path(out).resolve() in {f.resolve() for f in folders}:
        raise InputError(f"--out {out} is one of the checkpoints to average",
                         "write the average to a new folder")
    metas = [{**read_meta(f), "tokenizer_files": tokenizer_bytes(f)} for f in folders]
    for folder, meta in zip(folders, metas, strict=True):
        if meta.get("quantized"):  # int8 values under different scales do not average
            raise CheckpointError(f"{folder} is an int8 export", "average the fp32 checkpoints "
                                  "it came from, then seqtool export --int8 the average")
    for folder, meta in zip(folders[1:], metas[1:], strict=True):
        diff = difference(metas[0], meta)
        if diff:
            raise CheckpointError(f"cannot average {folders[0]} and {folder}: {diff}",
                                  SAME_RUN_HINT)
    loaded = [load_checkpoint(f) for f in folders]
    base = loaded[-1]
    base.model.load_state_dict(average_state_dicts([x.model.state_dict() for x in loaded]))
    card = averaged_card(base.meta, folders, command)
    save_checkpoint(Path(out), model=base.model, config=base.config, tokenizer=base.tokenizer,
                    tgt_tokenizer=base.tgt_tokenizer, card=card,
                    extra_meta={"averaged_from": [str(f) for f in folders],
                                "commands": base.meta.get("commands", [])})
    return {"out": str(out), "checkpoints": [str(f) for f in folders],
            "steps": [m.get("metrics", {}).get("step") for m in metas],
            "kind": base.meta["kind"],
            "parameters": sum(p.numel() for p in base.model.parameters()),
            "bytes": sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())}


def averaged_card(meta: dict[str, Any], folders: list[Path], command: str) -> str:
    """The model card of an average: the training recipe of the run, then what was
    averaged (the single checkpoints' metrics do not hold for it)."""
    from seqtool.checkpoint import CARD_FILE

    card = folders[-1] / CARD_FILE
    head = card.read_text("utf-8").split("\n## Metrics")[0] if card.is_file() else (
        f"# seqtool {meta['kind']} model\n")
    lines = [head.rstrip(), "", "## Averaged", "",
             f"The element-wise mean of the weights of {len(folders)} checkpoints:", "",
             *[f"- {f}" for f in folders]]
    if command:
        lines += ["", "```", command, "```"]
    return "\n".join(lines) + "\n"
