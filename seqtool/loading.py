"""Which checkpoint a command uses, in one place: a `--model` path, or the model
shipped in the package's checkpoints/ folder for the task (the WikiText-2 LM,
the DailyDialog chat model, `translate-<src>-<tgt>` for a language pair).

Each `load_*` returns a checkpoint.Loaded; a long-running process (a server, a
notebook) loads once and passes it to the commands' run functions. With
`quantize="int8"` the model is converted to dynamic int8 after loading
(layers/int8.py; CPU only); a folder written by `seqtool export --int8` is int8
already.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqtool.errors import CheckpointError, ConfigError

DEFAULT_LM = "lm-wikitext2"  # checkpoints/lm-wikitext2/
DEFAULT_CHAT = "chat-dailydialog"  # checkpoints/chat-dailydialog/
SHIPPED_PREFIX = "translate-"  # checkpoints/translate-<src>-<tgt>/
QUANTIZE = ("int8",)  # --quantize choices (layers/int8.py METHODS)
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


def check_quantize(quantize: str | None, device: str) -> None:
    """Refuse an unknown quantisation, or one on another device than the CPU."""
    if quantize is None:
        return
    if quantize not in QUANTIZE:
        raise ConfigError(f"unknown quantisation {quantize!r}",
                          f"valid: {', '.join(QUANTIZE)}")
    if device != "cpu":
        raise ConfigError(f"{quantize} inference runs on the CPU, not {device}",
                          "add --device cpu, or drop --quantize")


def quantized(loaded: Any, quantize: str | None, device: str) -> Any:
    """`loaded` with its model converted to `quantize` ("int8") in place; None, or a
    model that is quantised already, leaves it as it is."""
    from seqtool.layers.int8 import is_quantized, quantize_model, unquantisable

    check_quantize(quantize, device)
    if quantize is None or is_quantized(loaded.model):
        return loaded
    fp32 = unquantisable(loaded.model)
    if fp32:  # refused rather than half done: nothing silently stays fp32
        cell = loaded.config.model.cell
        raise ConfigError(f"{loaded.folder} has {cell} cells ({', '.join(fp32)}), which no "
                          f"{quantize} kernel runs", "drop --quantize: int8 runs LSTM and GRU "
                          "models")
    quantize_model(loaded.model, quantize)
    return loaded


def load_lm(model_path: Path | None, device: str = "cpu", quantize: str | None = None) -> Any:
    """A language-model checkpoint (--model), or the shipped one; `quantize="int8"`
    converts it to dynamic int8 (CPU)."""
    from seqtool.checkpoint import load_checkpoint

    check_quantize(quantize, device)
    return quantized(load_checkpoint(model_path or shipped_model(DEFAULT_LM), expect_kind="lm",
                                     device=device), quantize, device)


def load_translator(model_path: Path | None, src: str | None = None, tgt: str | None = None,
                    device: str = "cpu", quantize: str | None = None) -> Any:
    """A translation checkpoint (--model), or the shipped model for --src/--tgt;
    `quantize="int8"` converts it to dynamic int8 (CPU)."""
    from seqtool.checkpoint import load_checkpoint

    check_quantize(quantize, device)
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
    return quantized(loaded, quantize, device)


def load_chatbot(model_path: Path | None, device: str = "cpu",
                 quantize: str | None = None) -> Any:
    """A chat checkpoint (--model), or the shipped one. Another kind of checkpoint is
    refused by name. `quantize="int8"` converts it to dynamic int8 (CPU)."""
    from seqtool.checkpoint import load_checkpoint, read_meta, resolve_folder

    check_quantize(quantize, device)
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
    return quantized(load_checkpoint(folder, expect_kind="chat", device=device), quantize,
                     device)
