"""Which checkpoint a command uses, in one place: a `--model` path, or the model
shipped in the package's checkpoints/ folder for the task (the WikiText-2 LM,
the DailyDialog chat model, `translate-<src>-<tgt>` for a language pair).

Each `load_*` returns a checkpoint.Loaded; a long-running process (a server, a
notebook) loads once and passes it to the commands' run functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqtool.errors import CheckpointError, ConfigError

DEFAULT_LM = "lm-wikitext2"  # checkpoints/lm-wikitext2/
DEFAULT_CHAT = "chat-dailydialog"  # checkpoints/chat-dailydialog/
SHIPPED_PREFIX = "translate-"  # checkpoints/translate-<src>-<tgt>/
KIND_NAMES = {"lm": "language model", "translate": "translation model", "chat": "chat model",
              "word2vec": "word2vec model"}


def checkpoints_root() -> Path:
    """The package's checkpoints/ folder (shipped models)."""
    from importlib import resources

    return Path(str(resources.files("seqtool.checkpoints")))


def shipped_model(name: str) -> Path:
    """Folder of a model shipped in the package's checkpoints/."""
    folder = checkpoints_root() / name
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"the shipped model {name!r} is not installed",
                              "pass --model CKPT, or reinstall seqtool from a full checkout")
    return folder


def shipped_translators() -> list[str]:
    """Names of the shipped translation models, e.g. ["translate-de-en"]."""
    root = checkpoints_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.name.startswith(SHIPPED_PREFIX) and (p / "config.json").is_file())


def load_lm(model_path: Path | None, device: str = "cpu") -> Any:
    """A language-model checkpoint (--model), or the shipped one."""
    from seqtool.checkpoint import load_checkpoint

    return load_checkpoint(model_path or shipped_model(DEFAULT_LM), expect_kind="lm",
                           device=device)


def load_translator(model_path: Path | None, src: str | None = None, tgt: str | None = None,
                    device: str = "cpu") -> Any:
    """A translation checkpoint (--model), or the shipped model for --src/--tgt."""
    from seqtool.checkpoint import load_checkpoint

    if model_path is None:
        available = shipped_translators()
        listing = ", ".join(available) if available else "none are installed yet"
        if not src or not tgt:
            raise CheckpointError("no translation model given",
                                  f"pass --model CKPT, or --src and --tgt to pick a shipped "
                                  f"model (shipped: {listing})")
        name = f"{SHIPPED_PREFIX}{src}-{tgt}"
        if name not in available:
            raise CheckpointError(f"no shipped model translates {src} -> {tgt}",
                                  f"shipped: {listing}; or train one (seqtool train translate "
                                  f"--src {src} --tgt {tgt} ...) and pass --model RUN")
        model_path = checkpoints_root() / name
    loaded = load_checkpoint(model_path, expect_kind="translate", device=device)
    data = loaded.config.data
    for flag, asked, trained in (("--src", src, data.src_lang), ("--tgt", tgt, data.tgt_lang)):
        if asked and trained and asked != trained:
            raise ConfigError(f"{loaded.folder} translates {data.src_lang} -> {data.tgt_lang}; "
                              f"{flag} {asked} does not match",
                              f"drop {flag}, or use a model for that language")
    return loaded


def load_chatbot(model_path: Path | None, device: str = "cpu") -> Any:
    """A chat checkpoint (--model), or the shipped one. Another kind of checkpoint is
    refused by name."""
    from seqtool.checkpoint import load_checkpoint, read_meta, resolve_folder

    if model_path is None:
        try:
            model_path = shipped_model(DEFAULT_CHAT)
        except CheckpointError:
            raise CheckpointError("no chat model given, and the shipped one is not installed",
                                  "pass --model RUN (train one: seqtool train chat --model "
                                  "hred --corpus dailydialog --out RUN)") from None
    folder = resolve_folder(model_path)
    kind = read_meta(folder).get("kind")
    if kind != "chat":
        what = KIND_NAMES.get(str(kind), f"{kind!r} model")
        raise CheckpointError(f"{folder} is a {what} (kind {kind!r}), not a chat model",
                              "pass a checkpoint from `seqtool train chat`")
    return load_checkpoint(folder, expect_kind="chat", device=device)
