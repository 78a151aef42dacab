"""Typed, frozen configs read from strict TOML.

A run's config has five tables: `[data]`, `[tokenizer]`, `[model]`, `[train]`
and `[search]` (decoding defaults, stored with the model).
Presets ship in `seqtool/presets/*.toml`; `--set train.lr=3e-4` overrides one
key. Unknown keys are refused with a "did you mean" hint, and choices and
ranges are checked with a message that lists the valid values.
Derived values (vocabulary size, special ids) come from the tokenizer and are
never set here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _opt(default: Any, help: str, choices: tuple = (), low: float | None = None,
         high: float | None = None, above: float | None = None) -> Any:
    """A dataclass field with a help text, allowed choices and a range (`low`/`high`
    inclusive, `above` an exclusive lower bound). configfile.coerce checks TOML keys,
    `--set` overrides and command-line flags against them, so each range is written
    once, here."""
    meta = {"help": help, "choices": choices, "low": low, "high": high, "above": above}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


# sacrebleu's tokenizers (metrics.bleu; data.bleu_tokenize, --bleu-tokenize)
BLEU_TOKENIZERS = ("13a", "intl", "char", "none", "zh", "ja-mecab", "ko-mecab", "flores101",
                   "flores200")


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    corpus: str = _opt("", "catalog name of an imported corpus (seqtool corpus list)")
    train_file: str = _opt("", "plain text training file (instead of --corpus)")
    valid_file: str = _opt("", "plain text validation file")
    test_file: str = _opt("", "plain text test file")
    hf_dataset: str = _opt("", "language models: a Hugging Face dataset, NAME[:CONFIG] "
                           "(downloaded when online)")
    hf_text_column: str = _opt("text", "language models: the hf_dataset column with the text")
    # translation: a parallel corpus's two languages, or line-aligned plain files
    src_lang: str = _opt("", "translation: source language code of --corpus (e.g. de)")
    tgt_lang: str = _opt("", "translation: target language code of --corpus (e.g. en)")
    train_src: str = _opt("", "translation: source side of the training pairs (plain text)")
    train_tgt: str = _opt("", "translation: target side of the training pairs")
    valid_src: str = _opt("", "translation: source side of the validation pairs")
    valid_tgt: str = _opt("", "translation: target side of the validation pairs")
    test_src: str = _opt("", "translation: source side of the test pairs")
    test_tgt: str = _opt("", "translation: target side of the test pairs")
    bleu_tokenize: str = _opt("", "translation: sacrebleu tokenizer for BLEU ('' = by target "
                              "language: char for ja/ko, zh for zh, else 13a)",
                              ("", *BLEU_TOKENIZERS))
    workers: int = _opt(0, "processes that tokenise the training text into the token store "
                        "(0 = one per core)", low=0)


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    path: str = _opt("", "use this trained tokenizer folder (seqtool tokenizer train) "
                         "instead of training one")
    kind: str = _opt("word", "word-level or sentencepiece", ("word", "unigram", "bpe"))
    vocab_size: int = _opt(8000, "sentencepiece vocabulary size", low=8)
    min_freq: int = _opt(1, "word level: words seen fewer times become <unk>", low=1)
    max_vocab: int = _opt(0, "word level: keep at most this many words (0 = all)", low=0)
    lowercase: bool = _opt(False, "lower-case text before tokenizing")
    sample_size: int = _opt(200_000, "sentencepiece: train on at most this many lines "
                            "(a uniform sample of larger corpora)", low=1)


@dataclass(frozen=True, kw_only=True)
class LMModelConfig:
    arch: str = _opt("rnn", "architecture (seqtool.models.registry)")
    cell: str = _opt("lstm", "recurrent cell",
                     ("lstm", "gru", "rnn_tanh", "rnn_relu", "peephole"))
    emb_dim: int = _opt(400, "embedding size (= output projection size when tied)", low=1)
    hidden: int = _opt(400, "recurrent hidden size", low=1)
    layers: int = _opt(2, "stacked recurrent layers", low=1)
    dropout: float = _opt(0.3, "dropout on embeddings and between layers", low=0.0, high=0.95)
    tie_weights: bool = _opt(True, "share input embeddings and output layer")
    softmax: str = _opt("full", "output layer: full softmax or adaptive (exact) softmax",
                        ("full", "adaptive"))
    cutoffs: tuple[int, ...] = _opt((2000, 10000), "adaptive: frequency-rank cluster cut-offs")
    div_value: float = _opt(4.0, "adaptive: each tail cluster's dim is divided by this", low=1.0)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = _opt(10, "passes over the training data", low=1)
    max_steps: int = _opt(0, "stop after this many steps (0 = no limit)", low=0)
    max_minutes: float = _opt(0.0, "stop after this many minutes (0 = no limit); a cosine "
                              "schedule then anneals by time", low=0.0)
    batch_size: int = _opt(32, "sequences per batch (all processes together under torchrun)",
                           low=1)
    accum_steps: int = _opt(1, "gradient accumulation: batches per optimizer step", low=1)
    bptt: int = _opt(35, "truncated BPTT length in tokens", low=1)
    optimizer: str = _opt("adamw", "optimizer", ("sgd", "adam", "adamw"))
    lr: float = _opt(2e-3, "learning rate", low=0.0)
    weight_decay: float = _opt(0.0, "weight decay", low=0.0)
    clip: float = _opt(0.25, "gradient norm clipping (0 = off)", low=0.0)
    schedule: str = _opt("plateau", "learning-rate schedule", ("plateau", "cosine", "constant"))
    lr_decay: float = _opt(0.25, "plateau: multiply lr by this when validation stalls",
                           low=0.0, high=1.0)
    warmup_steps: int = _opt(0, "linear warm-up steps", low=0)
    patience: int = _opt(3, "early stopping: epochs without improvement (0 = off)", low=0)
    eval_every: int = _opt(0, "also validate every N steps (0 = once per epoch)", low=0)
    precision: str = _opt("fp32", "compute precision (bf16 autocast on CPU/CUDA)",
                          ("fp32", "bf16"))
    seed: int = _opt(1234, "random seed")
    log_every: int = _opt(50, "report training loss every N steps", low=1)
    init_embeddings: str = _opt("", "start the input embeddings from this word2vec text file "
                                "(seqtool export-vectors, gensim); new runs only")
    keep_last: int = _opt(0, "also keep the weights of the last N evaluations as "
                          "RUN/ckpt-<step>/ (for seqtool average; 0 = none)", low=0)
    dist_timeout: float = _opt(600.0, "torchrun: seconds a process waits for the others "
                               "(a validation on rank 0 included) before it gives up", above=0.0)
    tensorboard: bool = _opt(False, "also write TensorBoard event files to RUN/tensorboard/ "
                             "(pip install 'seqtool[tensorboard]')")


@dataclass(frozen=True, kw_only=True)
class Seq2SeqModelConfig:
    """Attention encoder-decoder. The defaults are the peers' benchmark model
    (JoeyNMT / OpenNMT-py, shared/peers/NOTES.md): bi-GRU 128 per direction,
    GRU decoder 256, Bahdanau attention, input feeding, no bridge layer."""

    arch: str = _opt("rnn", "architecture (seqtool.models.registry)")
    cell: str = _opt("gru", "recurrent cell of encoder and decoder",
                     ("gru", "lstm", "rnn_tanh", "rnn_relu"))
    emb_dim: int = _opt(128, "source and target embedding size", low=1)
    enc_hidden: int = _opt(128, "encoder hidden size per direction", low=1)
    dec_hidden: int = _opt(256, "decoder hidden size", low=1)
    enc_layers: int = _opt(1, "stacked encoder layers", low=1)
    dec_layers: int = _opt(1, "stacked decoder layers", low=1)
    bidirectional: bool = _opt(True, "bidirectional encoder (annotations of 2 x enc_hidden)")
    attention: str = _opt("bahdanau", "additive (MLP), Luong dot or general, or none",
                          ("bahdanau", "dot", "general", "none"))
    input_feeding: bool = _opt(True, "feed the last attentional vector into the next step")
    bridge: str = _opt("last", "decoder's initial state: the encoder's final state as is "
                       "(sizes must match), tanh(linear(final)), or zeros",
                       ("last", "linear", "none"))
    reverse_source: bool = _opt(False, "read the source backwards (Sutskever et al. 2014)")
    peeky: bool = _opt(False, "give the encoder's final state to every decoder step")
    dropout: float = _opt(0.0, "dropout on embeddings, between layers and before the "
                          "attentional layer", low=0.0, high=0.95)
    label_smoothing: float = _opt(0.0, "label smoothing of the training loss (validation "
                                  "reports plain NLL)", low=0.0, high=0.9)
    tie_target_embeddings: bool = _opt(False, "output layer shares the target embeddings")
    shared_vocab: bool = _opt(False, "one joint tokenizer for source and target; encoder and "
                              "decoder share the embeddings")


@dataclass(frozen=True, kw_only=True)
class ChatModelConfig:
    """Dialogue models (models/hred.py, models/vhred.py): a bidirectional utterance
    encoder, a context RNN over the last `context_turns` utterances (HRED, Serban et
    al. 2016), a latent z per reply (VHRED, Serban et al. 2017), or the single-turn
    seq2seq baseline, which reads only the previous utterance. The kl_* keys,
    word_dropout and bow_weight act in VHRED training only."""

    arch: str = _opt("hred", "seq2seq (previous utterance only), hred (context RNN), or "
                     "vhred (context RNN + latent variable); seqtool.models.registry")
    cell: str = _opt("gru", "recurrent cell of encoder, context RNN and decoder",
                     ("gru", "lstm"))
    emb_dim: int = _opt(128, "embedding size (encoder and decoder share the embeddings)", low=1)
    enc_hidden: int = _opt(128, "utterance encoder hidden size per direction", low=1)
    bidirectional: bool = _opt(True, "bidirectional utterance encoder")
    ctx_hidden: int = _opt(256, "context RNN hidden size", low=1)
    dec_hidden: int = _opt(256, "decoder hidden size", low=1)
    dec_layers: int = _opt(1, "stacked decoder layers", low=1)
    attention: str = _opt("none", "attention over the last utterance's tokens",
                          ("bahdanau", "dot", "general", "none"))
    input_feeding: bool = _opt(True, "with attention: feed the attentional vector back")
    context_turns: int = _opt(3, "previous utterances a reply is conditioned on (the "
                              "window is this + 1; seq2seq always reads 1)", low=1, high=50)
    max_utt_len: int = _opt(40, "tokens kept per utterance (context: the last ones; "
                            "reply: the first ones)", low=1)
    latent_dim: int = _opt(64, "vhred: size of z", low=1)
    kl_anneal: str = _opt("linear", "vhred: KL weight schedule (cyclical: Fu et al. 2019)",
                          ("none", "linear", "cyclical"))
    kl_anneal_steps: int = _opt(10000, "vhred: steps from weight 0 to 1 (linear), or the "
                                "length of one cycle (cyclical)", low=1)
    kl_cycles: int = _opt(4, "vhred cyclical: cycles before the weight stays at 1", low=1)
    kl_cycle_ratio: float = _opt(0.5, "vhred cyclical: part of a cycle spent rising",
                                 low=0.01, high=1.0)
    kl_target: float = _opt(0.0, "vhred: KL capacity C in nats per reply; training pays "
                            "beta * |KL - C| instead of beta * KL, so the KL settles near C "
                            "(Burgess et al. 2018; 0 = off)", low=0.0)
    word_dropout: float = _opt(0.25, "vhred: decoder input tokens replaced by <unk> in "
                               "training (Bowman et al. 2016)", low=0.0, high=1.0)
    bow_weight: float = _opt(1.0, "vhred: weight of the bag-of-words loss (Zhao et al. "
                             "2017; 0 = off)", low=0.0)
    dropout: float = _opt(0.2, "dropout on embeddings, between layers, before the output",
                          low=0.0, high=0.95)
    tie_embeddings: bool = _opt(True, "the output layer shares the embeddings")


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """Beam search settings (seqtool.search.beam_search)."""

    beam_size: int = _opt(5, "hypotheses kept per sentence (1 = greedy)", low=1)
    n_best: int = _opt(1, "hypotheses returned per sentence (at most beam_size)", low=1)
    alpha: float = _opt(0.0, "GNMT length penalty ((5+len)/6)^alpha; 0 or -1 = none",
                        low=-1.0, high=5.0)
    max_len_ratio: float = _opt(2.0, "output length limit: ratio * source length + offset",
                                low=0.0)
    max_len_offset: int = _opt(10, "output length limit: ratio * source length + offset",
                               low=0)
    max_len: int = _opt(100, "hard cap on output tokens", low=1)
    no_repeat_ngram: int = _opt(0, "forbid repeating any n-gram of this size (0 = off)", low=0)
    stop: str = _opt("early", "end a sentence when its finished hypotheses lead the alive "
                     "ones at the current length (early, as OpenNMT-py) or when none can "
                     "overtake them (exact; slower with alpha > 0)", ("early", "exact"))
    precision: str = _opt("auto", "decoding precision: auto = the model's train.precision "
                          "(bf16 autocast; faster on CPUs with AVX-512 BF16 or AMX); fp64 "
                          "gives the same output whatever the thread count and the batch",
                          ("auto", "fp32", "bf16", "fp64"))


@dataclass(frozen=True, kw_only=True)
class Word2VecConfig:
    """word2vec with negative sampling (Mikolov et al. 2013; models/word2vec.py). Vocabulary:
    the word tokenizer with tokenizer.min_freq as word2vec's min-count."""

    arch: str = _opt("skipgram", "skip-gram (predict the word from each context word) or "
                     "CBOW (from the mean of the context); seqtool.models.registry")
    dim: int = _opt(100, "vector size", low=1)
    window: int = _opt(5, "largest context window; each word draws its own from 1..window",
                       low=1, high=50)
    negative: int = _opt(5, "negative samples per predicted word (unigram^0.75)", low=1,
                         high=50)
    sample: float = _opt(1e-3, "frequent-word subsampling threshold (0 = off)", low=0.0,
                         high=1.0)
    alpha: float = _opt(0.0, "starting learning rate, decayed linearly to min_alpha "
                        "(0 = 0.025 for skip-gram, 0.05 for CBOW)", low=0.0)
    min_alpha: float = _opt(1e-4, "final learning rate", low=0.0)
    batch_words: int = _opt(1024, "predicted words per batched update (torch engine)", low=1)
    engine: str = _opt("auto", "training loop: numba (compiled, one word at a time, as "
                       "gensim; pip install 'seqtool[fast]'), torch (batched updates) or "
                       "auto (CBOW: numba where installed, else torch; skip-gram: torch)",
                       ("auto", "numba", "torch"))


@dataclass(frozen=True, kw_only=True)
class PredictConfig:
    """`seqtool predict`: the next-word table."""

    top_k: int = _opt(10, "how many candidates to list", low=1)


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """`seqtool generate` (seqtool.decoding.decode with sample=True)."""

    max_tokens: int = _opt(30, "tokens to generate", low=1)
    temperature: float = _opt(1.0, "sampling temperature", above=0.0)
    top_k: int = _opt(0, "sample from the k most probable tokens (0 = all)", low=0)
    top_p: float = _opt(1.0, "nucleus sampling: the smallest set of tokens with this mass",
                        above=0.0, high=1.0)
    greedy: bool = _opt(False, "always take the most probable token")
    num_samples: int = _opt(1, "independent samples", low=1)


@dataclass(frozen=True, kw_only=True)
class ChatSettings:
    """`seqtool chat`: decoding settings of a conversation (the /samples and /context
    commands change them within their ranges)."""

    samples: int = _opt(1, "replies per turn (VHRED: a z for each)", low=1, high=10)
    context: int = _opt(3, "previous utterances the model sees", low=1, high=50)
    temperature: float = _opt(0.8, "sampling temperature", above=0.0)
    top_p: float = _opt(0.9, "nucleus sampling mass", above=0.0, high=1.0)
    greedy: bool = _opt(False, "most probable words instead of sampling (VHRED: still one z "
                        "per reply)")
    max_len: int = _opt(40, "reply length limit in tokens", low=1)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything that defines a training run."""

    task: str = "lm"
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: Any = field(default_factory=LMModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)  # decoding defaults

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, **{t: _table_dict(getattr(self, t)) for t in TABLES}}


TABLES = ("data", "tokenizer", "model", "train", "search")


def _table_dict(obj: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out
