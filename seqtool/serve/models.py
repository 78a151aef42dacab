"""The models a server answers with, each loaded once (loading.py): `--model SPEC`
is a checkpoint or run folder, a shipped model's name (translate-de-en), or a
task (lm, chat) for the shipped default; NAME=SPEC names it. Without any, every
shipped model is served."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqtool.errors import CheckpointError, ConfigError, did_you_mean

TASK_NAMES = {"lm": "lm-wikitext2", "chat": "chat-dailydialog"}  # the shipped defaults
ENDPOINTS = {"lm": ["/predict", "/generate"], "translate": ["/translate"],
             "chat": ["/chat", "/chat/sessions"]}


@dataclass
class Served:
    """One loaded model: its name in requests, its kind and the checkpoint.Loaded."""

    name: str
    kind: str  # "lm" | "translate" | "chat"
    loaded: Any
    device: str
    join: bool = False  # a word-level Japanese/Chinese target: words joined for reading
    info: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """What GET /models lists for this model (the card and curves are left out)."""
        i = self.info
        out = {"name": self.name, "kind": self.kind, "path": i.get("path"),
               "vocab_size": i.get("vocab_size"), "tokenizer": i.get("tokenizer"),
               "total_parameters": i.get("total_parameters"), "metrics": i.get("metrics", {}),
               "endpoints": ENDPOINTS[self.kind]}
        data = self.loaded.config.data
        if self.kind == "translate":
            out.update(src=data.src_lang, tgt=data.tgt_lang,
                       attention=bool(self.loaded.model.has_attention),
                       search=dataclasses.asdict(self.loaded.config.search))
        return out


def _folder(spec: str) -> Path:
    from seqtool.loading import checkpoints_root

    if Path(spec).exists():
        return Path(spec)
    shipped = sorted(p.name for p in checkpoints_root().iterdir()
                     if (p / "config.json").is_file())
    name = TASK_NAMES.get(spec, spec)
    if name in shipped:
        return checkpoints_root() / name
    raise CheckpointError(f"--model {spec}: not a folder, a task or a shipped model",
                          did_you_mean(spec, [*TASK_NAMES, *shipped])
                          or "give a run or checkpoint folder, or one of: "
                          + ", ".join([*TASK_NAMES, *shipped]))


def shipped_specs() -> list[str]:
    """Every model in the package's checkpoints/ (what serve loads by default)."""
    from seqtool.loading import checkpoints_root

    root = checkpoints_root()
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file()) \
        if root.is_dir() else []


def load_one(spec: str, device: str, quantize: str | None = None) -> Served:
    """One --model SPEC ([NAME=]folder, shipped name or task), loaded (`quantize`
    "int8": converted to dynamic int8, layers/int8.py)."""
    from seqtool.checkpoint import read_meta, resolve_folder
    from seqtool.commands.info import loaded_info
    from seqtool.loading import KIND_NAMES, load_chatbot, load_lm, load_translator
    from seqtool.translation import joins_words

    name, eq, path = spec.partition("=")
    if not eq or not name or "/" in name:
        name, path = "", spec
    folder = resolve_folder(_folder(path))
    kind = str(read_meta(folder).get("kind"))
    if kind == "lm":
        loaded = load_lm(folder, device, quantize)
    elif kind == "translate":
        loaded = load_translator(folder, device=device, quantize=quantize)
    elif kind == "chat":
        loaded = load_chatbot(folder, device, quantize)
    else:
        raise CheckpointError(f"{folder} is a {KIND_NAMES.get(kind, repr(kind))}; serve "
                              "answers with language, translation and chat models",
                              "give an lm, translate or chat checkpoint")
    if not name:
        name = folder.parent.name if folder.name in ("best", "last") else folder.name
    served = Served(name, kind, loaded, device,
                    join=kind == "translate" and joins_words(loaded))
    served.info = loaded_info(loaded)
    return served


def load_models(specs: list[str], device: str = "cpu", quantize: str | None = None
                ) -> dict[str, Served]:
    """The models by name, in the order given; two with one name are refused."""
    out: dict[str, Served] = {}
    for spec in specs or shipped_specs():
        served = load_one(spec, device, quantize)
        if served.name in out:
            raise ConfigError(f"two models are named {served.name!r}",
                              f"name them: --model a={spec} --model b=...")
        out[served.name] = served
    if not out:
        raise CheckpointError("no model to serve", "pass --model CKPT (repeatable)")
    return out
