"""`seqtool train lm` and `seqtool train translate`: build data, tokenizers and model
from a RunConfig and train them with the one Trainer."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from seqtool.config import RunConfig, build_config
from seqtool.errors import ConfigError, DataError, TrainingError


def lm_split_path(cfg: RunConfig, split: str) -> Path:
    """The text file of `split`: an explicit --train-file/--valid-file or the corpus's."""
    from seqtool.data.corpora import split_files

    explicit = {"train": cfg.data.train_file, "valid": cfg.data.valid_file,
                "test": cfg.data.test_file}[split]
    if explicit:
        return Path(explicit)
    if cfg.data.corpus:
        files = split_files(cfg.data.corpus)
        if split not in files:
            raise DataError(f"corpus {cfg.data.corpus!r} has no {split} split",
                            "splits: " + ", ".join(files))
        return files[split]
    raise ConfigError(f"no {split} data", "give --corpus NAME or --train-file and --valid-file")


def default_run_dir(cfg: RunConfig) -> Path:
    d = cfg.data
    if cfg.task == "translate":
        langs = f"-{d.src_lang}-{d.tgt_lang}" if d.src_lang and d.tgt_lang else ""
        name = (d.corpus if d.corpus and not d.train_src else Path(d.train_src).stem
                or "data") + langs
    else:
        name = d.corpus or Path(d.train_file).stem or "data"
    return Path("runs") / f"{cfg.task}-{name}-{datetime.now():%Y%m%d-%H%M%S}"


def _describe_model(cfg: RunConfig, params: int) -> list[str]:
    """The model card's model, data and tokenizer lines (task-aware)."""
    m, d, tc = cfg.model, cfg.data, cfg.tokenizer
    if cfg.task == "translate":
        enc = (f"{'bi-' if m.bidirectional else ''}{m.cell.upper()} {m.enc_layers} x "
               f"{m.enc_hidden}{' per direction' if m.bidirectional else ''}")
        feed = ", input feeding" if m.input_feeding else ""
        data = (f"{d.corpus} {d.src_lang} -> {d.tgt_lang}" if d.corpus and not d.train_src
                else f"{d.train_src} -> {d.train_tgt}")
        vocab = "one joint vocabulary" if m.shared_vocab else "source and target vocabularies"
        return [f"- model: attention encoder-decoder; encoder {enc}, decoder {m.cell.upper()} "
                f"{m.dec_layers} x {m.dec_hidden}, attention {m.attention}{feed}, "
                f"embedding {m.emb_dim}; {params:,} parameters",
                f"- data: {data}", f"- tokenizer: {tc.kind}, {vocab}"
                + (", lower-cased" if tc.lowercase else "")]
    if cfg.task == "chat":
        return _describe_chat(cfg, params)
    return [f"- model: {m.cell} x{m.layers}, hidden {m.hidden}, embedding {m.emb_dim}, "
            f"softmax {m.softmax}, tied {m.tie_weights}; {params:,} parameters",
            f"- data: {d.corpus or d.train_file}", f"- tokenizer: {tc.kind}"]


def _describe_chat(cfg: RunConfig, params: int) -> list[str]:
    """A dialogue model card's model, data (with the corpus's license) and tokenizer lines."""
    from seqtool.data.corpora import get_info

    m, d = cfg.model, cfg.data
    enc = f"{'bi-' if m.bidirectional else ''}{m.cell.upper()} {m.enc_hidden}"
    parts = {"seq2seq": "single-turn seq2seq baseline (reads the previous utterance only)",
             "hred": f"HRED, context RNN {m.ctx_hidden} over {m.context_turns} utterances",
             "vhred": f"VHRED, context RNN {m.ctx_hidden} over {m.context_turns} utterances, "
                      f"latent z {m.latent_dim} (KL annealing {m.kl_anneal}, word dropout "
                      f"{m.word_dropout}, bag-of-words weight {m.bow_weight})"}
    lines = [f"- model: {parts[m.arch]}; utterance encoder {enc}, decoder {m.cell.upper()} "
             f"{m.dec_layers} x {m.dec_hidden}, attention {m.attention}, embedding "
             f"{m.emb_dim}; {params:,} parameters"]
    if d.corpus:
        info = get_info(d.corpus)
        terms = " (non-commercial, share-alike)" if "BY-NC-SA" in info.license else ""
        lines += [f"- data: {d.corpus} ({info.description.split(':')[0]})",
                  f"- data license: {info.license_short or info.license}{terms}; the model "
                  "is trained on this data, so keep to its terms when you use or share it"]
    else:
        lines.append(f"- data: {d.train_file}")
    tc = cfg.tokenizer
    return lines + [f"- tokenizer: {tc.kind}" + (", lower-cased" if tc.lowercase else "")]


def model_card(cfg: RunConfig, params: int, metrics: dict[str, Any] | None = None) -> str:
    cmd = " ".join(shlex.quote(a) for a in ["seqtool", *sys.argv[1:]])
    lines = [f"# seqtool {cfg.task} model", "", *_describe_model(cfg, params), "",
             "## Recipe", "", "```", cmd, "```", "", "## Metrics", ""]
    for k, v in (metrics or {}).items():
        lines.append(f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}")
    return "\n".join(lines) + "\n"


def check_same_architecture(old: RunConfig, new: RunConfig) -> None:
    if old.model != new.model or old.tokenizer != new.tokenizer:
        diffs = [k for k in old.model.__dataclass_fields__
                 if getattr(old.model, k) != getattr(new.model, k)]
        raise TrainingError(f"--resume into a run with a different architecture "
                            f"(differs: {', '.join(diffs) or 'tokenizer'})",
                            "drop the model overrides, or start a new run with --out")


def resume_config(run_dir: Path, overrides: tuple[str, ...] = ()) -> RunConfig:
    """The run's own config with `--set` overrides; the architecture may not change."""
    from seqtool.checkpoint import read_meta
    from seqtool.config import parse_override

    last = Path(run_dir) / "last"
    if not (last / "config.json").exists():
        raise TrainingError(f"no resumable checkpoint in {run_dir}/last",
                            "give the run folder that train wrote (--out)")
    meta = read_meta(last)
    raw = {k: meta[k] for k in ("task", "data", "tokenizer", "model", "train", "search")
           if k in meta}
    old = build_config(raw)
    for text in overrides:
        table, name, value = parse_override(text)
        raw.setdefault(table, {})[name] = value
    cfg = build_config(raw)
    check_same_architecture(old, cfg)
    return cfg


def init_embeddings_from(cfg: RunConfig, model: Any, tokenizer: Any, tgt_tokenizer: Any = None
                         ) -> dict[str, Any] | None:
    """train.init_embeddings (--init-embeddings FILE): copy word2vec vectors into a new
    model's input embeddings (commands/word2vec.py); how many words were found."""
    if not cfg.train.init_embeddings:
        return None
    from seqtool.commands.word2vec import init_embeddings

    return init_embeddings(model, cfg.train.init_embeddings, tokenizer, tgt_tokenizer)


def train_lm(cfg: RunConfig, out: Path | None = None, resume: Path | None = None,
             reporter: Any = None, device: str = "cpu", threads: int = 0) -> dict[str, Any]:
    """Train (or, with `resume`, continue) a language model; cfg from resume_config then."""
    import torch

    from seqtool.checkpoint import (load_checkpoint, load_training_state, read_meta,
                                    save_checkpoint)
    from seqtool.data.cache import cached_token_stream
    from seqtool.data.lm import LMData
    from seqtool.data.text import read_lines
    from seqtool.data.tokenizer import load_tokenizer, train_tokenizer
    from seqtool.models import build_model
    from seqtool.models.lm import count_parameters
    from seqtool.training import Trainer

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.train.seed)
    if resume is not None:
        run_dir = Path(resume)
        old_lr = float(read_meta(run_dir / "last")["train"]["lr"])
        loaded = load_checkpoint(run_dir / "last", expect_kind="lm", device=device)
        tokenizer, model = loaded.tokenizer, loaded.model
    else:
        run_dir = Path(out) if out else default_run_dir(cfg)
        if (run_dir / "last").exists():
            raise TrainingError(f"{run_dir} already holds a run",
                                f"resume it with --resume {run_dir}, or choose another --out")
        tokenizer = None
        model = None
    train_path, valid_path = lm_split_path(cfg, "train"), lm_split_path(cfg, "valid")
    if tokenizer is None:
        tc = cfg.tokenizer
        if tc.path:
            tokenizer = load_tokenizer(Path(tc.path))
        else:
            tokenizer = train_tokenizer(read_lines(train_path, "train file"), tc.kind,
                                        tc.vocab_size, tc.min_freq, tc.max_vocab, tc.lowercase)
        model = build_model("lm", cfg.model, tokenizer.vocab_size)
    init = init_embeddings_from(cfg, model, tokenizer) if resume is None else None
    data = LMData(cached_token_stream(train_path, tokenizer),
                  cached_token_stream(valid_path, tokenizer), cfg.train.batch_size,
                  cfg.train.bptt)
    run_dir.mkdir(parents=True, exist_ok=True)
    params = sum(count_parameters(model).values())

    def save(name: str, training: dict[str, Any] | None) -> None:
        metrics = {}
        if trainer.state.history:
            metrics = {k: v for k, v in trainer.state.history[-1].items()
                       if k.startswith("valid_") or k in ("step", "epoch")}
        save_checkpoint(run_dir / name, model=model, config=cfg, tokenizer=tokenizer,
                        card=model_card(cfg, params, metrics), training=training,
                        extra_meta={"metrics": metrics})

    trainer = Trainer(model, data, cfg.train, run_dir, save, reporter, device)
    if resume is not None:
        trainer.restore(load_training_state(run_dir / "last"))
        if cfg.train.lr != old_lr:  # --set train.lr=... on resume
            trainer.state.lr = cfg.train.lr
    summary = trainer.run()
    summary["parameters"] = params
    summary["vocab_size"] = tokenizer.vocab_size
    if init:
        summary["init_embeddings"] = init
    return summary


# --------------------------------------------------------------------------- translate
def translation_split(cfg: RunConfig, split: str) -> tuple[list[str], list[str], int]:
    """Aligned (source, target) lines of `split` from plain files (--train-src ...) or
    the corpus, and how many pairs with an empty side were skipped."""
    from seqtool.commands.translate import corpus_pairs
    from seqtool.data.parallel import read_parallel

    d = cfg.data
    files = {"train": (d.train_src, d.train_tgt), "valid": (d.valid_src, d.valid_tgt),
             "test": (d.test_src, d.test_tgt)}[split]
    if any(files):
        if not all(files):
            raise ConfigError(f"give both --{split}-src and --{split}-tgt",
                              "each source file needs its line-aligned translation")
        return read_parallel(*files)
    if d.corpus:
        return corpus_pairs(d.corpus, split, d.src_lang, d.tgt_lang)
    raise ConfigError(f"no {split} data", "give --corpus NAME --src LANG --tgt LANG, or "
                      "--train-src/--train-tgt and --valid-src/--valid-tgt")


def translation_tokenizers(cfg: RunConfig, src_lines: list[str], tgt_lines: list[str]
                           ) -> tuple[Any, Any]:
    """(source, target) tokenizers: loaded from tokenizer.path (its tgt/ holds a separate
    target tokenizer, else both sides share it), one joint tokenizer trained on both
    sides for model.shared_vocab, or one trained per side."""
    from seqtool.checkpoint import TGT_DIR
    from seqtool.data.tokenizer import TOKENIZER_FILE, load_tokenizer, train_tokenizer

    tc = cfg.tokenizer
    if tc.path:
        src = load_tokenizer(Path(tc.path))
        tgt_dir = Path(tc.path) / TGT_DIR
        return src, load_tokenizer(tgt_dir) if (tgt_dir / TOKENIZER_FILE).is_file() else src

    def train(lines: list[str]) -> Any:
        return train_tokenizer(lines, tc.kind, tc.vocab_size, tc.min_freq, tc.max_vocab,
                               tc.lowercase)

    if cfg.model.shared_vocab:
        joint = train(src_lines + tgt_lines)
        return joint, joint
    return train(src_lines), train(tgt_lines)


def encode_with_references(src_lines: list[str], tgt_lines: list[str], src_tok: Any,
                           tgt_tok: Any) -> tuple[list[Any], list[str], int]:
    """Token id pairs, the target text of each kept pair, and the number dropped
    (a side that encodes to nothing)."""
    pairs, refs = [], []
    for s, t in zip(src_lines, tgt_lines):
        s_ids, t_ids = src_tok.encode(s), tgt_tok.encode(t)
        if s_ids and t_ids:
            pairs.append((s_ids, t_ids))
            refs.append(t)
    return pairs, refs, len(src_lines) - len(pairs)


class TranslationData:
    """ParallelData for the Trainer, plus the BLEU of greedy decoding of the validation
    set (the Trainer's `extra_metrics` hook): the best checkpoint is the one with the
    highest validation BLEU, and early stopping and the plateau schedule follow it."""

    metric = "valid_bleu"
    higher_is_better = True

    def __init__(self, data: Any, references: list[str], tgt_tok: Any, search: Any,
                 tokenize: str) -> None:
        self.data = data
        self.references = references
        self.tgt_tok = tgt_tok
        self.search = dataclasses.replace(search, beam_size=1, n_best=1)  # greedy
        self.tokenize = tokenize

    def steps_per_epoch(self) -> int:
        return self.data.steps_per_epoch()

    def train_batches(self, epoch: int) -> Any:
        return self.data.train_batches(epoch)

    def valid_batches(self) -> Any:
        return self.data.valid_batches()

    def extra_metrics(self, model: Any, device: Any) -> dict[str, float]:
        from seqtool.commands.translate import translate_ids
        from seqtool.metrics import bleu

        sources = [s for s, _ in self.data.valid]
        batch = self.data.eval_batch_size or self.data.batch_size
        hyps = translate_ids(model, sources, self.search, str(device), batch)
        texts = [self.tgt_tok.decode(h[0].tokens) for h in hyps]
        return {"bleu": bleu(texts, self.references, self.tokenize,
                             self.tgt_tok.lowercase)["score"]}


def train_translate(cfg: RunConfig, out: Path | None = None, resume: Path | None = None,
                    reporter: Any = None, device: str = "cpu", threads: int = 0
                    ) -> dict[str, Any]:
    """Train (or, with `resume`, continue) an attention encoder-decoder; validation BLEU
    (greedy) each evaluation picks the best checkpoint. Pairs with an empty side are
    skipped and counted in the summary."""
    import torch

    from seqtool.checkpoint import load_checkpoint, load_training_state, read_meta
    from seqtool.data.parallel import ParallelData
    from seqtool.metrics import default_bleu_tokenize
    from seqtool.models import build_model
    from seqtool.models.lm import count_parameters
    from seqtool.training import Trainer

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.train.seed)
    if resume is not None:
        run_dir = Path(resume)
        old_lr = float(read_meta(run_dir / "last")["train"]["lr"])
    else:
        run_dir = Path(out) if out else default_run_dir(cfg)
        if (run_dir / "last").exists():
            raise TrainingError(f"{run_dir} already holds a run",
                                f"resume it with --resume {run_dir}, or choose another --out")
    train_src, train_tgt, skipped_train = translation_split(cfg, "train")
    valid_src, valid_tgt, skipped_valid = translation_split(cfg, "valid")
    if resume is not None:
        loaded = load_checkpoint(run_dir / "last", expect_kind="translate", device=device)
        src_tok, tgt_tok, model = loaded.tokenizer, loaded.tgt_tokenizer, loaded.model
    else:
        src_tok, tgt_tok = translation_tokenizers(cfg, train_src, train_tgt)
        model = build_model("translate", cfg.model, (src_tok.vocab_size, tgt_tok.vocab_size))
    init = init_embeddings_from(cfg, model, src_tok, tgt_tok) if resume is None else None
    train_pairs, _, dropped_train = encode_with_references(train_src, train_tgt, src_tok,
                                                           tgt_tok)
    valid_pairs, refs, dropped_valid = encode_with_references(valid_src, valid_tgt, src_tok,
                                                              tgt_tok)
    stats = {"train_pairs": len(train_pairs), "valid_pairs": len(valid_pairs),
             "skipped_empty": {"train": skipped_train + dropped_train,
                               "valid": skipped_valid + dropped_valid},
             "max_src_len": max((len(s) for s, _ in train_pairs), default=0),
             "max_tgt_len": max((len(t) for _, t in train_pairs), default=0)}
    tokenize = cfg.data.bleu_tokenize or default_bleu_tokenize(cfg.data.tgt_lang)
    data = TranslationData(ParallelData(train_pairs, valid_pairs, cfg.train.batch_size,
                                        seed=cfg.train.seed), refs, tgt_tok, cfg.search,
                           tokenize)
    run_dir.mkdir(parents=True, exist_ok=True)
    params = sum(count_parameters(model).values())

    def save(name: str, training: dict[str, Any] | None) -> None:
        from seqtool.checkpoint import save_checkpoint

        metrics = {}
        if trainer.state.history:
            metrics = {k: v for k, v in trainer.state.history[-1].items()
                       if k.startswith("valid_") or k in ("step", "epoch")}
        save_checkpoint(run_dir / name, model=model, config=cfg, tokenizer=src_tok,
                        tgt_tokenizer=tgt_tok, card=model_card(cfg, params, metrics),
                        training=training, extra_meta={"metrics": metrics, "data_stats": stats})

    trainer = Trainer(model, data, cfg.train, run_dir, save, reporter, device,
                      resume_command="seqtool train translate")
    if resume is not None:
        trainer.restore(load_training_state(run_dir / "last"))
        if cfg.train.lr != old_lr:
            trainer.state.lr = cfg.train.lr
    summary = trainer.run()
    summary.update(parameters=params, vocab_size=[src_tok.vocab_size, tgt_tok.vocab_size],
                   bleu_tokenize=tokenize, **stats)
    if init:
        summary["init_embeddings"] = init
    return summary


# --------------------------------------------------------------------------- chat
def train_chat(cfg: RunConfig, out: Path | None = None, resume: Path | None = None,
               reporter: Any = None, device: str = "cpu", threads: int = 0) -> dict[str, Any]:
    """Train (or, with `resume`, continue) a dialogue model: seq2seq, HRED or VHRED
    (model.arch) on the same (context, reply) windows; validation perplexity (VHRED:
    the bound) picks the best checkpoint, and a VHRED run logs the KL per reply."""
    import torch

    from seqtool.checkpoint import (load_checkpoint, load_training_state, read_meta,
                                    save_checkpoint)
    from seqtool.commands.chat import ChatData, chat_dialogues
    from seqtool.data.dialogue import DialogueData, encode_windows
    from seqtool.data.tokenizer import load_tokenizer, train_tokenizer
    from seqtool.models import build_model
    from seqtool.models.lm import count_parameters
    from seqtool.training import Trainer

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.train.seed)
    run_dir = Path(resume) if resume is not None else Path(out) if out else default_run_dir(cfg)
    if resume is None and (run_dir / "last").exists():
        raise TrainingError(f"{run_dir} already holds a run",
                            f"resume it with --resume {run_dir}, or choose another --out")
    train_d, valid_d = chat_dialogues(cfg, "train"), chat_dialogues(cfg, "valid")
    if resume is not None:
        old_lr = float(read_meta(run_dir / "last")["train"]["lr"])
        loaded = load_checkpoint(run_dir / "last", expect_kind="chat", device=device)
        tokenizer, model = loaded.tokenizer, loaded.model
    else:
        tc = cfg.tokenizer
        tokenizer = (load_tokenizer(Path(tc.path)) if tc.path else train_tokenizer(
            [u for d in train_d for u in d.turns], tc.kind, tc.vocab_size, tc.min_freq,
            tc.max_vocab, tc.lowercase))
        model = build_model("chat", cfg.model, tokenizer.vocab_size)
    m = cfg.model
    train_ex = encode_windows(train_d, tokenizer, model.context_turns, m.max_utt_len)
    valid_ex = encode_windows(valid_d, tokenizer, model.context_turns, m.max_utt_len)
    stats = {"train_dialogues": len(train_d), "valid_dialogues": len(valid_d),
             "train_replies": len(train_ex), "valid_replies": len(valid_ex),
             "context_turns": model.context_turns}
    data = ChatData(DialogueData(train_ex, valid_ex, cfg.train.batch_size, seed=cfg.train.seed))
    run_dir.mkdir(parents=True, exist_ok=True)
    params = sum(count_parameters(model).values())

    def save(name: str, training: dict[str, Any] | None) -> None:
        metrics = {}
        if trainer.state.history:
            metrics = {k: v for k, v in trainer.state.history[-1].items()
                       if k.startswith("valid_") or k in ("step", "epoch")}
        save_checkpoint(run_dir / name, model=model, config=cfg, tokenizer=tokenizer,
                        card=model_card(cfg, params, metrics), training=training,
                        extra_meta={"metrics": metrics, "data_stats": stats})

    trainer = Trainer(model, data, cfg.train, run_dir, save, reporter, device,
                      resume_command="seqtool train chat")
    if resume is not None:
        trainer.restore(load_training_state(run_dir / "last"))
        if cfg.train.lr != old_lr:
            trainer.state.lr = cfg.train.lr
    summary = trainer.run()
    summary.update(parameters=params, vocab_size=tokenizer.vocab_size, arch=m.arch, **stats)
    return summary
