"""The `seqtool` command line (click). Heavy imports live inside command bodies
so that `seqtool --help` stays instant. Nothing imports this module."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from seqtool import __version__
from seqtool.errors import ConfigError, DataError, InputError, SeqtoolError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


device_option = click.option("--device", default="auto", show_default=True,
                             type=click.Choice(["auto", "cpu", "cuda"]),
                             help="Where to run; auto picks CUDA when present.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object instead of rich output.")
model_option = click.option("--model", "model_path", type=click.Path(path_type=Path),
                            help="Checkpoint or run folder (default: the shipped model).")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="seqtool")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Recurrent networks for next-word prediction, generation, translation and chat.

    \b
    Examples:
      seqtool predict "some of them looks like"
      seqtool generate "the meaning of life is" --max-tokens 20
      seqtool corpus import wikitext-2 --from ../shared/corpora/wikitext-2
      seqtool train lm --corpus wikitext-2 --config lm-wikitext2
      seqtool translate "Ein Mann fährt Fahrrad." --model runs/m30k
    """
    if debug:
        os.environ["SEQTOOL_DEBUG"] = "1"


# --------------------------------------------------------------------------- train
@cli.group(context_settings=CONTEXT)
def train() -> None:
    """Train a model (language model: `seqtool train lm`; translation: `train translate`).

    \b
    Example:
      seqtool train lm --train-file train.txt --valid-file valid.txt --config lm-tiny
      seqtool train translate --corpus multi30k --src de --tgt en --config translate-multi30k
    """


@train.command("lm", context_settings=CONTEXT)
@click.option("--corpus", help="Catalog name of an imported corpus (seqtool corpus list).")
@click.option("--train-file", type=click.Path(path_type=Path), help="Plain text training file.")
@click.option("--valid-file", type=click.Path(path_type=Path), help="Plain text validation file.")
@click.option("--config", "preset", help="Preset name (lm-wikitext2, lm-ptb, lm-tiny) or TOML file.")
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(path_type=Path),
              help="Tokenizer folder from `seqtool tokenizer train` (default: train one).")
@click.option("--set", "overrides", multiple=True, metavar="TABLE.KEY=VALUE",
              help="Override one config key, e.g. --set train.lr=1e-3 (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder (default runs/lm-...).")
@click.option("--resume", type=click.Path(path_type=Path),
              help="Continue the run in this folder exactly where it stopped.")
@click.option("--threads", type=int, default=0, help="CPU threads (0 = torch's default).")
@device_option
@json_option
def train_lm_cmd(corpus: str | None, train_file: Path | None, valid_file: Path | None,
                 preset: str | None, tokenizer_dir: Path | None, overrides: tuple[str, ...],
                 out: Path | None,
                 resume: Path | None, threads: int, device: str, as_json: bool) -> None:
    """Train a recurrent language model with truncated BPTT.

    Writes RUN/best and RUN/last checkpoints and RUN/metrics.jsonl. Ctrl-C saves
    RUN/last; --resume RUN continues exactly.

    \b
    Example:
      seqtool train lm --corpus wikitext-2 --config lm-wikitext2 --out runs/wt2
      seqtool train lm --train-file a.txt --valid-file b.txt --set model.cell=gru
      seqtool train lm --resume runs/wt2 --set train.epochs=20
    """
    from seqtool.commands.train import resume_config, train_lm
    from seqtool.config import load_config
    from seqtool.console import RichReporter, print_json, stdout_console

    if resume is not None:
        if corpus or train_file or valid_file or preset or tokenizer_dir:
            raise ConfigError("--resume takes its data and config from the run",
                              "only --set overrides may be given with --resume")
        cfg = resume_config(resume, overrides)
    else:
        data = {"corpus": corpus, "train_file": str(train_file) if train_file else None,
                "valid_file": str(valid_file) if valid_file else None}
        tok = {"path": str(tokenizer_dir) if tokenizer_dir else None}
        cfg = load_config("lm", preset, overrides, {"data": data, "tokenizer": tok})
    _interrupt_on_signals()
    summary = train_lm(cfg, out, resume, RichReporter(), _device(device), threads)
    if as_json:
        print_json(summary)
    else:
        stdout_console().print(
            f"done ({summary['stop_reason']}): {summary['steps']} steps, best "
            f"{summary['metric']} {summary['best']:.2f}; checkpoints in {summary['run_dir']}")


@train.command("translate", context_settings=CONTEXT)
@click.option("--corpus", help="Imported parallel corpus (multi30k, small_parallel_enja).")
@click.option("--src", "src_lang", help="Source language code of --corpus (e.g. de).")
@click.option("--tgt", "tgt_lang", help="Target language code of --corpus (e.g. en).")
@click.option("--train-src", type=click.Path(path_type=Path), help="Plain source training file.")
@click.option("--train-tgt", type=click.Path(path_type=Path),
              help="Its translation, line by line.")
@click.option("--valid-src", type=click.Path(path_type=Path), help="Source validation file.")
@click.option("--valid-tgt", type=click.Path(path_type=Path),
              help="Its translation, line by line.")
@click.option("--config", "preset",
              help="Preset (translate-multi30k, translate-multi30k-peer, translate-enja, "
                   "translate-tiny) or TOML file.")
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(path_type=Path),
              help="Tokenizer folder (its tgt/ subfolder, if any, for the target side).")
@click.option("--set", "overrides", multiple=True, metavar="TABLE.KEY=VALUE",
              help="Override one config key, e.g. --set model.dropout=0.2 (repeatable).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Run folder (default runs/translate-...).")
@click.option("--resume", type=click.Path(path_type=Path),
              help="Continue the run in this folder exactly where it stopped.")
@click.option("--threads", type=int, default=0, help="CPU threads (0 = torch's default).")
@device_option
@json_option
def train_translate_cmd(corpus: str | None, src_lang: str | None, tgt_lang: str | None,
                        train_src: Path | None, train_tgt: Path | None, valid_src: Path | None,
                        valid_tgt: Path | None, preset: str | None, tokenizer_dir: Path | None,
                        overrides: tuple[str, ...], out: Path | None, resume: Path | None,
                        threads: int, device: str, as_json: bool) -> None:
    """Train an attention encoder-decoder (GRU/LSTM, Bahdanau or Luong attention).

    Validates each epoch: loss, perplexity and the BLEU of greedy translations of the
    validation set; RUN/best is the checkpoint with the best BLEU. Pairs with an
    empty side are skipped and counted. Ctrl-C saves RUN/last; --resume RUN goes on.

    \b
    Example:
      seqtool train translate --corpus multi30k --src de --tgt en --config translate-multi30k
      seqtool train translate --train-src a.de --train-tgt a.en --valid-src b.de \\
          --valid-tgt b.en --config translate-tiny --out runs/tiny
      seqtool train translate --resume runs/tiny --set train.epochs=20
    """
    from seqtool.commands.train import resume_config, train_translate
    from seqtool.config import load_config
    from seqtool.console import RichReporter, print_json, stdout_console

    files = {"train_src": train_src, "train_tgt": train_tgt, "valid_src": valid_src,
             "valid_tgt": valid_tgt}
    if resume is not None:
        if corpus or src_lang or tgt_lang or any(files.values()) or preset or tokenizer_dir:
            raise ConfigError("--resume takes its data and config from the run",
                              "only --set overrides may be given with --resume")
        cfg = resume_config(resume, overrides)
    else:
        data = {"corpus": corpus, "src_lang": src_lang, "tgt_lang": tgt_lang,
                **{k: str(v) if v else None for k, v in files.items()}}
        tok = {"path": str(tokenizer_dir) if tokenizer_dir else None}
        cfg = load_config("translate", preset, overrides, {"data": data, "tokenizer": tok})
    _interrupt_on_signals()
    summary = train_translate(cfg, out, resume, RichReporter(), _device(device), threads)
    if as_json:
        print_json(summary)
        return
    skipped = summary["skipped_empty"]
    best = summary["best"]
    stdout_console().print(
        f"done ({summary['stop_reason']}): {summary['steps']} steps on "
        f"{summary['train_pairs']:,} pairs, best {summary['metric']} "
        + (f"{best:.2f}" if best is not None else "-")
        + f"; checkpoints in {summary['run_dir']}"
        + (f"; skipped {skipped['train']} training and {skipped['valid']} validation pairs "
           "with an empty side" if skipped["train"] or skipped["valid"] else ""))


def _interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM (schedulers, `kill`) both save a resumable last/ checkpoint.

    SIGINT is re-armed too: a shell starts background jobs with it ignored."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


# --------------------------------------------------------------------------- use
@cli.command(context_settings=CONTEXT)
@click.argument("text")
@click.option("--top-k", default=10, show_default=True, help="How many candidates to list.")
@model_option
@device_option
@json_option
def predict(text: str, top_k: int, model_path: Path | None, device: str, as_json: bool) -> None:
    """Show the most probable next words after TEXT.

    \b
    Example:
      seqtool predict "some of them looks like" --top-k 20
      seqtool predict "the president of the" --json
    """
    from seqtool.commands.predict import predict_next
    from seqtool.console import print_json, render_prediction, warn

    if top_k < 1:
        raise click.BadParameter("must be at least 1", param_hint="--top-k") from None
    result = predict_next(text, top_k, model_path, _device(device))
    if result["unknown"]:
        warn("not in the vocabulary (read as <unk>): " + ", ".join(result["unknown"]))
    if as_json:
        print_json(result)
    else:
        render_prediction(result)


@cli.command(context_settings=CONTEXT)
@click.argument("text")
@click.option("--max-tokens", default=30, show_default=True, help="Tokens to generate.")
@click.option("--temperature", default=1.0, show_default=True, help="Sampling temperature > 0.")
@click.option("--top-k", default=0, show_default=True, help="Sample from the k best (0 = all).")
@click.option("--top-p", default=1.0, show_default=True, help="Nucleus sampling mass in (0, 1].")
@click.option("--greedy", is_flag=True, help="Always take the most probable token.")
@click.option("--seed", type=int, default=None, help="Random seed for reproducible samples.")
@click.option("--num", "num_samples", default=1, show_default=True, help="Independent samples.")
@model_option
@device_option
@json_option
def generate(text: str, max_tokens: int, temperature: float, top_k: int, top_p: float,
             greedy: bool, seed: int | None, num_samples: int, model_path: Path | None,
             device: str, as_json: bool) -> None:
    """Continue TEXT with the language model (greedy or sampled).

    \b
    Example:
      seqtool generate "the history of" --max-tokens 40 --temperature 0.8 --top-p 0.9
      seqtool generate "in the united states" --greedy
    """
    from seqtool.commands.predict import generate_text
    from seqtool.console import print_json, stdout_console, warn

    if temperature <= 0:
        raise click.BadParameter("must be > 0", param_hint="--temperature") from None
    if top_k < 0:
        raise click.BadParameter("must be >= 0", param_hint="--top-k") from None
    if not 0 < top_p <= 1:
        raise click.BadParameter("must be in (0, 1]", param_hint="--top-p") from None
    if max_tokens < 1 or num_samples < 1:
        raise click.BadParameter("must be at least 1", param_hint="--max-tokens/--num") from None
    result = generate_text(text, max_tokens, temperature, top_k, top_p, greedy, seed,
                           num_samples, model_path, _device(device))
    if result["unknown"]:
        warn("not in the vocabulary (read as <unk>): " + ", ".join(result["unknown"]))
    if as_json:
        print_json(result)
        return
    con = stdout_console()
    from rich.markup import escape
    for sample in result["samples"]:
        con.print(f"[bold]{escape(result['prompt'])}[/] {escape(sample)}")


def _search_flags(beam: int | None, nbest: int | None, alpha: float | None,
                  max_len_ratio: float | None, no_repeat_ngram: int | None) -> dict[str, Any]:
    """Check the decoding flags; only the given ones override the model's [search]."""
    if beam is not None and beam < 1:
        raise click.BadParameter("must be at least 1 (1 = greedy)", param_hint="--beam"
                                 ) from None
    if nbest is not None and nbest < 1:
        raise click.BadParameter("must be at least 1", param_hint="--nbest") from None
    if nbest is not None and beam is not None and nbest > beam:
        raise click.BadParameter(f"{nbest} is larger than --beam {beam}; the n-best list "
                                 "comes from the beam", param_hint="--nbest") from None
    if alpha is not None and not -1 <= alpha <= 5:
        raise click.BadParameter("must be in [-1, 5] (0 or -1 = no length penalty)",
                                 param_hint="--alpha") from None
    if max_len_ratio is not None and max_len_ratio < 0:
        raise click.BadParameter("must be >= 0", param_hint="--max-len-ratio") from None
    if no_repeat_ngram is not None and no_repeat_ngram < 0:
        raise click.BadParameter("must be >= 0 (0 = off)", param_hint="--no-repeat-ngram"
                                 ) from None
    return {"beam": beam, "nbest": nbest, "alpha": alpha, "max_len_ratio": max_len_ratio,
            "no_repeat_ngram": no_repeat_ngram}


BLEU_TOKENIZERS = ("13a", "intl", "char", "none", "zh", "ja-mecab", "ko-mecab", "flores101",
                   "flores200")  # as seqtool.metrics.BLEU_TOKENIZERS (imported lazily there)


def search_options(f: Any) -> Any:
    """--beam, --nbest, --alpha, --max-len-ratio, --no-repeat-ngram (default: the model's)."""
    for opt in reversed([
        click.option("--beam", type=int, help="Beam size (1 = greedy; default: the model's "
                     "[search] beam_size)."),
        click.option("--nbest", type=int, help="Translations per sentence (at most --beam)."),
        click.option("--alpha", type=float, help="GNMT length penalty ((5+len)/6)^alpha; "
                     "0 = none."),
        click.option("--max-len-ratio", type=float,
                     help="Output length limit: ratio x source length + offset."),
        click.option("--no-repeat-ngram", type=int,
                     help="Never repeat an n-gram of this size (0 = off)."),
        click.option("--bleu-tokenize", type=click.Choice(BLEU_TOKENIZERS),
                     help="sacrebleu tokenizer for BLEU (default: the model's data."
                     "bleu_tokenize, else char for ja/ko, zh for zh, 13a otherwise)."),
    ]):
        f = opt(f)
    return f


@cli.command("translate", context_settings=CONTEXT)
@click.argument("text", required=False)
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Checkpoint or run folder (default: the shipped model for --src/--tgt).")
@click.option("--src", help="Source language (picks a shipped model without --model).")
@click.option("--tgt", help="Target language (picks a shipped model without --model).")
@search_options
@click.option("--batch-size", default=64, show_default=True, help="Lines decoded together.")
@click.option("--reference", type=click.Path(path_type=Path),
              help="Reference translations (one per input line): print BLEU and chrF.")
@click.option("--show-attention", is_flag=True,
              help="One sentence: show the attention as a heat map.")
@device_option
@json_option
def translate_cmd(text: str | None, model_path: Path | None, src: str | None, tgt: str | None,
                  beam: int | None, nbest: int | None, alpha: float | None,
                  max_len_ratio: float | None, no_repeat_ngram: int | None,
                  bleu_tokenize: str | None, batch_size: int, reference: Path | None,
                  show_attention: bool, device: str, as_json: bool) -> None:
    """Translate TEXT, or the lines of stdin to stdout (one output line per input line).

    Lines are read and translated lazily, --batch-size at a time, and written in
    input order; a progress line shows on stderr when it is a terminal. With
    --nbest N > 1 the plain output has N lines per input, `LINE ||| text ||| score`
    (Moses n-best format); --json writes one object per input line:
    {"source", "translations": [{"text", "score"}, ...]}. --reference prints BLEU
    and chrF with their sacrebleu signatures on stderr after translating.

    \b
    Example:
      seqtool translate "Ein Mann fährt Fahrrad." --model runs/m30k
      seqtool translate "Ein Mann fährt Fahrrad." --src de --tgt en --beam 5 --nbest 3
      cat test.de | seqtool translate --model runs/m30k > test.hyp
      seqtool translate --model runs/m30k --reference test.en < test.de > test.hyp
      seqtool translate "Zwei Hunde spielen." --model runs/m30k --show-attention
    """
    from seqtool.commands.translate import load_translator, search_settings
    from seqtool.console import print_json, warn

    flags = _search_flags(beam, nbest, alpha, max_len_ratio, no_repeat_ngram)
    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size") from None
    if text is None and sys.stdin.isatty():
        raise InputError("nothing to translate", 'give a sentence ("Ein Mann fährt '
                         'Fahrrad.") or pipe lines: cat FILE | seqtool translate --model X')
    if show_attention and text is None:
        raise ConfigError("--show-attention works on one sentence", "give TEXT instead of "
                          "piping lines")
    dev = _device(device)
    loaded = load_translator(model_path, src, tgt, dev)
    search = search_settings(loaded.config.search, **flags)
    if text is not None:
        from seqtool.commands.translate import translate_text

        result = translate_text(loaded, text, search, dev, show_attention)
        _warn_translation(result, loaded, warn)
        if result.unknown:
            warn("not in the vocabulary (read as <unk>): " + ", ".join(result.unknown))
        if as_json:
            print_json(result.to_json())
        else:
            from seqtool.console import render_translation

            render_translation(result, show_attention)
        hyps = [result.texts[0]]
    else:
        hyps = _translate_stream(loaded, search, dev, batch_size, as_json, reference is not None)
    if reference is not None:
        from seqtool.commands.translate import score_against
        from seqtool.console import render_scores

        render_scores(score_against(hyps, reference, loaded, tgt, bleu_tokenize))


def _warn_translation(t: Any, loaded: Any, warn: Any, count: list[int] | None = None) -> None:
    """A warning for a source longer than every training sentence (the first 5)."""
    if not t.too_long:
        return
    if count is not None:
        count[0] += 1
        if count[0] > 5:
            return
    longest = loaded.meta.get("data_stats", {}).get("max_src_len")
    where = f"line {t.line}: " if count is not None else ""
    warn(f"{where}the source has {t.source_tokens} tokens, longer than any training "
         f"sentence ({longest}); the translation may be poor")


def _translate_stream(loaded: Any, search: Any, device: str, batch_size: int, as_json: bool,
                      keep: bool) -> list[str]:
    """stdin -> stdout, one line (or n-best block / JSON object) per input line, flushed
    per batch. Returns the best translations when `keep` (for --reference)."""
    import json

    from seqtool.commands.translate import translate_lines
    from seqtool.console import line_progress, warn

    for stream in (sys.stdin, sys.stdout):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8")
    kept: list[str] = []
    long_lines = [0]
    out = sys.stdout
    with line_progress("translate") as advance:
        try:
            for t in translate_lines(loaded, sys.stdin, search, device, batch_size):
                _warn_translation(t, loaded, warn, long_lines)
                if as_json:
                    out.write(json.dumps(t.to_json(), ensure_ascii=False) + "\n")
                elif search.n_best > 1:
                    out.writelines(f"{t.line - 1} ||| {text} ||| {score:.4f}\n"
                                   for text, score in zip(t.texts, t.scores))
                else:
                    out.write(t.texts[0] + "\n")
                if keep:
                    kept.append(t.texts[0])
                if t.line % batch_size == 0:
                    out.flush()
                advance(1)
        except UnicodeDecodeError as exc:
            raise DataError(f"the input is not UTF-8 ({exc.reason})",
                            "convert it, e.g. iconv -f latin1 -t utf-8 IN | seqtool translate"
                            ) from None
    out.flush()
    if long_lines[0] > 5:
        warn(f"{long_lines[0]} lines in all were longer than any training sentence")
    return kept


# --------------------------------------------------------------------------- evaluate
@cli.group(context_settings=CONTEXT)
def evaluate() -> None:
    """Score a model on held-out data (`seqtool evaluate lm`, `seqtool evaluate translate`).

    \b
    Example:
      seqtool evaluate lm --model runs/wt2 --file test.txt
      seqtool evaluate translate --model runs/m30k --corpus multi30k --split test_2016_flickr
    """


@evaluate.command("lm", context_settings=CONTEXT)
@model_option
@click.option("--corpus", help="Imported corpus name (seqtool corpus list).")
@click.option("--split", default="test", show_default=True, help="Split of --corpus.")
@click.option("--file", "file", type=click.Path(path_type=Path), help="Any text file instead.")
@click.option("--batch-size", default=10, show_default=True, help="Parallel streams.")
@device_option
@json_option
def evaluate_lm_cmd(model_path: Path | None, corpus: str | None, split: str, file: Path | None,
                    batch_size: int, device: str, as_json: bool) -> None:
    """Word-level perplexity: exp(mean NLL per token), <eos> counted per line.

    \b
    Example:
      seqtool evaluate lm --corpus wikitext-2 --split test
      seqtool evaluate lm --model runs/ptb --file my.txt --json
    """
    from seqtool.commands.evaluate import evaluate_lm
    from seqtool.console import print_json, stdout_console

    result = evaluate_lm(model_path, corpus, split, file, batch_size, _device(device))
    if as_json:
        print_json(result)
    else:
        stdout_console().print(
            f"perplexity [bold]{result['perplexity']:.2f}[/] (loss {result['loss']:.4f}) on "
            f"{result['tokens']:,} tokens of {result['corpus']} {result['split']}"
            + (f"; per word {result['word_perplexity']:.2f}" if "word_perplexity" in result
               else ""))


@evaluate.command("translate", context_settings=CONTEXT)
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Checkpoint or run folder (default: the shipped model for --src/--tgt).")
@click.option("--corpus", help="Parallel corpus (default: the one the model was trained on).")
@click.option("--split", default="test", show_default=True,
              help="Split of --corpus, or its file name (multi30k: test_2016_flickr).")
@click.option("--src", help="Source language (default: the model's).")
@click.option("--tgt", help="Target language (default: the model's).")
@click.option("--src-file", type=click.Path(path_type=Path), help="Any source file instead.")
@click.option("--ref-file", type=click.Path(path_type=Path),
              help="Its reference translation, line by line.")
@search_options
@click.option("--batch-size", default=64, show_default=True, help="Sentences decoded together.")
@device_option
@json_option
def evaluate_translate_cmd(model_path: Path | None, corpus: str | None, split: str,
                           src: str | None, tgt: str | None, src_file: Path | None,
                           ref_file: Path | None, beam: int | None, nbest: int | None,
                           alpha: float | None, max_len_ratio: float | None,
                           no_repeat_ngram: int | None, bleu_tokenize: str | None,
                           batch_size: int, device: str, as_json: bool) -> None:
    """Corpus BLEU and chrF (sacrebleu, with signatures) and sentences per second.

    Translations are scored detokenized, against the raw reference text;
    lower-cased (signature case:lc) when the model's target tokenizer lower-cases.

    \b
    Example:
      seqtool evaluate translate --model runs/m30k --corpus multi30k \\
          --split test_2016_flickr --src de --tgt en --beam 5
      seqtool evaluate translate --model runs/m30k --src-file t.de --ref-file t.en --json
    """
    from seqtool.commands.evaluate import evaluate_translate
    from seqtool.console import print_json, render_scores

    flags = _search_flags(beam, nbest, alpha, max_len_ratio, no_repeat_ngram)
    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size") from None
    result = evaluate_translate(model_path, corpus, split, src, tgt, src_file, ref_file,
                                flags, batch_size, _device(device), bleu_tokenize)
    if as_json:
        print_json(result)
    else:
        render_scores(result, to_stdout=True)


# --------------------------------------------------------------------------- info / export
@cli.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(path_type=Path), required=False)
@json_option
def info(checkpoint: Path | None, as_json: bool) -> None:
    """Show a checkpoint's model card and parameter counts per component.

    \b
    Example:
      seqtool info runs/wt2/best
      seqtool info --json        # the shipped default model
    """
    from seqtool.commands.info import checkpoint_info
    from seqtool.console import print_json, render_info

    result = checkpoint_info(checkpoint)
    if as_json:
        print_json(result)
    else:
        render_info(result)


@cli.command(context_settings=CONTEXT)
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--half", is_flag=True, help="Store the weights in fp16 (half the size).")
def export(source: Path, dest: Path, half: bool) -> None:
    """Copy a checkpoint without training state (optionally fp16) for shipping.

    \b
    Example:
      seqtool export runs/wt2/best checkpoints/lm-wikitext2 --half
    """
    from seqtool.commands.info import export_checkpoint
    from seqtool.console import stdout_console

    size = export_checkpoint(source, dest, half)
    stdout_console().print(f"wrote {dest} ({size / 1e6:.1f} MB)")


# --------------------------------------------------------------------------- corpus
@cli.group(context_settings=CONTEXT)
def corpus() -> None:
    """The corpus catalog and the local store ($SEQTOOL_HOME/corpora, default ~/.seqtool).

    \b
    Example:
      seqtool corpus list
      seqtool corpus import wikitext-2 --from ../shared/corpora/wikitext-2
    """


def _byte_progress(label: str) -> Any:
    """A rich progress line on stderr (silent when not a terminal) and its callback."""
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TransferSpeedColumn)

    from seqtool.console import stderr_console

    con = stderr_console()
    bar = Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TextColumn("{task.fields[file]}"), console=con,
                   transient=True, disable=not con.is_terminal)
    task = bar.add_task(label, total=None, file="")

    def update(fname: str, done: int, total: int) -> None:
        bar.update(task, completed=done, total=total, file=fname)
    return bar, update


@corpus.command("list", context_settings=CONTEXT)
@json_option
def corpus_list(as_json: bool) -> None:
    """List the catalogued corpora and whether each is imported.

    \b
    Example:
      seqtool corpus list
      seqtool corpus list --json
    """
    from seqtool.commands.corpus import list_corpora
    from seqtool.console import print_json, stdout_console

    rows = list_corpora()
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("name", "task", "files", "size", "license", "present", box=None)
    for r in rows:
        table.add_row(r["name"], r["task"], str(r["files"]), f"{r['bytes'] / 1e6:.1f} MB",
                      r["license"], "[green]yes[/]" if r["present"] else "no")
    stdout_console().print(table)


@corpus.command("info", context_settings=CONTEXT)
@click.argument("name")
@json_option
def corpus_info_cmd(name: str, as_json: bool) -> None:
    """Show a corpus's catalog entry: splits, license, citation, sources.

    \b
    Example:
      seqtool corpus info multi30k
    """
    from rich.markup import escape

    from seqtool.commands.corpus import corpus_info
    from seqtool.console import print_json, stdout_console

    d = corpus_info(name)
    if as_json:
        print_json(d)
        return
    con = stdout_console()
    con.print(f"[bold]{escape(d['name'])}[/] ({d['task']}): {escape(d['description'])}")
    fields = [("format", d["format"]), ("languages", ", ".join(d["languages"])),
              ("splits", ", ".join(f"{k}={v}" for k, v in d["splits"].items())),
              ("files", f"{d['files']} ({d['bytes'] / 1e6:.1f} MB)"),
              ("license", d["license_full"]), ("citation", d["citation"]),
              ("homepage", d["homepage"]),
              ("hugging face", " ".join(x for x in (d["hf_dataset"], d["hf_config"]) if x)),
              ("download", d["download_base"]),
              ("store", d["store"] + ("" if d["present"] else "  (not imported)"))]
    for key, value in fields:
        if value:
            con.print(f"  [dim]{key:>12}[/]  {escape(str(value))}")


@corpus.command("import", context_settings=CONTEXT)
@click.argument("name")
@click.option("--from", "source", required=True, type=click.Path(path_type=Path),
              help="Folder holding the corpus's files (as listed by seqtool corpus info).")
@json_option
def corpus_import(name: str, source: Path, as_json: bool) -> None:
    """Copy a corpus from a local folder into the store, verifying every sha256.

    \b
    Example:
      seqtool corpus import wikitext-2 --from ../shared/corpora/wikitext-2
    """
    from seqtool.commands.corpus import import_from
    from seqtool.console import print_json, stdout_console

    bar, update = _byte_progress("import")
    with bar:
        result = import_from(name, source, update)
    if as_json:
        print_json(result)
    else:
        stdout_console().print(f"imported {result['name']}: {result['files']} files, "
                               f"{result['bytes'] / 1e6:.1f} MB verified, in {result['path']}")


@corpus.command("fetch", context_settings=CONTEXT)
@click.argument("name")
@json_option
def corpus_fetch(name: str, as_json: bool) -> None:
    """Download a corpus from its catalogued address (needs the network).

    \b
    Example:
      seqtool corpus fetch ptb
    """
    from seqtool.commands.corpus import fetch
    from seqtool.console import print_json, stdout_console

    bar, update = _byte_progress("fetch")
    with bar:
        result = fetch(name, update)
    if as_json:
        print_json(result)
    else:
        stdout_console().print(f"fetched {result['name']}: {result['files']} files, "
                               f"{result['bytes'] / 1e6:.1f} MB verified, in {result['path']}")


# --------------------------------------------------------------------------- tokenizer
@cli.group(context_settings=CONTEXT)
def tokenizer() -> None:
    """Train a tokenizer (word, sentencepiece unigram or BPE) or inspect one.

    \b
    Example:
      seqtool tokenizer train --file my.txt --kind unigram --vocab-size 2000 --out tok/mine
      seqtool tokenizer encode tok/mine "the meaning of life"
    """


@tokenizer.command("train", context_settings=CONTEXT)
@click.option("--corpus", help="Imported corpus name (seqtool corpus list).")
@click.option("--file", "file", type=click.Path(path_type=Path), help="Any UTF-8 text file.")
@click.option("--split", help="Split of --corpus (default: train, or its only split).")
@click.option("--lang", help="Language of a parallel corpus (default: all, one joint vocabulary).")
@click.option("--kind", required=True, type=click.Choice(["word", "unigram", "bpe"]),
              help="Word level or a sentencepiece model.")
@click.option("--vocab-size", type=int, default=None,
              help="Sentencepiece size (default 8000); for word, a cap (default none).")
@click.option("--min-freq", default=1, show_default=True, help="Word kind: drop rarer words.")
@click.option("--lowercase", is_flag=True, help="Lower-case text before tokenizing.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@json_option
def tokenizer_train(corpus: str | None, file: Path | None, split: str | None, lang: str | None,
                    kind: str, vocab_size: int | None, min_freq: int, lowercase: bool,
                    out: Path, as_json: bool) -> None:
    """Train a tokenizer and write it to OUT (tokenizer.json, plus spm.model).

    \b
    Example:
      seqtool tokenizer train --corpus wikitext-2 --kind word --out tok/wt2
      seqtool tokenizer train --corpus multi30k --kind bpe --vocab-size 8000 --out tok/m30k
      seqtool tokenizer train --file my.txt --kind unigram --vocab-size 2000 --out tok/mine
    """
    from seqtool.commands.tokenizer import train as train_tok
    from seqtool.console import print_json, stdout_console

    result = train_tok(out, kind, corpus, file, split, lang, vocab_size, min_freq, lowercase)
    if as_json:
        print_json(result)
    else:
        stdout_console().print(
            f"{result['kind']} tokenizer, {result['vocab_size']:,} entries, trained on "
            f"{result['lines']:,} lines of {result['source']} in {result['seconds']:.1f} s; "
            f"wrote {', '.join(result['files'])} to {result['out']}")


@tokenizer.command("encode", context_settings=CONTEXT)
@click.argument("folder", type=click.Path(path_type=Path))
@click.argument("text")
@json_option
def tokenizer_encode(folder: Path, text: str, as_json: bool) -> None:
    """Show how the tokenizer in FOLDER splits TEXT: pieces and ids.

    \b
    Example:
      seqtool tokenizer encode tok/wt2 "the meaning of life"
    """
    from rich.markup import escape

    from seqtool.commands.tokenizer import encode
    from seqtool.console import print_json, stdout_console, warn

    result = encode(folder, text)
    if as_json:
        print_json(result)
        return
    if result["unknown"]:
        warn("not in the vocabulary (read as <unk>): " + ", ".join(result["unknown"]))
    stdout_console().print(" ".join(f"{escape(p)}[dim]:{i}[/]"
                                    for p, i in zip(result["pieces"], result["ids"])))
    stdout_console().print(f"[dim]{len(result['ids'])} tokens ({result['kind']}, vocabulary "
                           f"{result['vocab_size']:,})[/]")


# --------------------------------------------------------------------------- lab
@cli.group(context_settings=CONTEXT)
def lab() -> None:
    """The course's experiments: an RNN in NumPy that learns binary addition; cells compared.

    \b
    Example:
      seqtool lab binary-addition --compare --plot losses.png
      seqtool lab cells --hidden 200 --seconds 60
    """


@lab.command("binary-addition", context_settings=CONTEXT)
@click.option("--activation", default="sigmoid", show_default=True,
              type=click.Choice(["sigmoid", "tanh", "relu"]), help="Hidden nonlinearity.")
@click.option("--init", default="normal", show_default=True,
              type=click.Choice(["normal", "xavier", "he"]),
              help="Weights from N(0,1), N(0,1/fan_in) or N(0,2/fan_in).")
@click.option("--lr", default=0.1, show_default=True, help="Learning rate (plain gradient descent).")
@click.option("--hidden", default=16, show_default=True, help="Hidden units.")
@click.option("--steps", default=10_000, show_default=True, help="Training steps, one addition each.")
@click.option("--seed", default=0, show_default=True,
              help="Seeds the weights, the training pairs and the held-out pairs.")
@click.option("--clip", default=0.0, show_default=True,
              help="Rescale the gradient to at most this norm (0 = off).")
@click.option("--window", default=100, show_default=True,
              help="The loss curve averages the loss over windows of this many steps.")
@click.option("--compare", is_flag=True,
              help="Run the five variants: base, lr=0.01, xavier, relu, tanh.")
@click.option("--plot", type=click.Path(path_type=Path), help="Also write the curves to this PNG.")
@json_option
@click.pass_context
def lab_binary_addition(ctx: click.Context, activation: str, init: str, lr: float, hidden: int,
                        steps: int, seed: int, clip: float, window: int, compare: bool,
                        plot: Path | None, as_json: bool) -> None:
    """An RNN in plain NumPy learns 8-bit binary addition (BPTT written out).

    Each step it reads one bit of a and of b (least significant first) and
    outputs one bit of a+b; one random pair (a, b < 128) per training step;
    1,000 pairs are held out for the accuracy (all 8 bits right). The base
    model: sigmoid, lr 0.1, weights from N(0, 1), 16 hidden units. --compare
    changes one thing at a time: lr=0.01, xavier init, relu, tanh.

    \b
    Outcome of a run, from its curve (mean loss per --window steps), the same
    for every variant:
      diverged       a loss or gradient became NaN/inf, or the gradient norm
                     (before clipping) exceeded 1e6 at some step
      converged      the last point of the curve is below 0.1 (cross-entropy
                     summed over the 8 bits; chance is 5.5); steps to converge:
                     where the curve went below 0.1 for good
      oscillating    neither, and over the last 30% of the curve its standard
                     deviation is above 5% of its mean while a fitted line
                     falls by less than 10% of the mean
      not converged  otherwise

    \b
    Example:
      seqtool lab binary-addition --compare --plot losses.png
      seqtool lab binary-addition --activation relu --clip 1
      seqtool lab binary-addition --compare --json
    """
    from seqtool.commands.lab import binary_addition
    from seqtool.console import note, print_json, render_addition

    if compare:
        chosen = [f"--{p}" for p in ("activation", "init", "lr")
                  if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE]
        if chosen:
            raise ConfigError(f"--compare runs the five fixed variants; {', '.join(chosen)} "
                              "set a single run", "drop them, or drop --compare")
    result = binary_addition(activation=activation, init=init, lr=lr, hidden=hidden,
                             steps=steps, seed=seed, clip=clip, window=window, compare=compare,
                             plot=plot, on_variant=lambda name: note(f"training {name} ..."))
    if as_json:
        print_json(result)
    else:
        render_addition(result)


@lab.command("cells", context_settings=CONTEXT)
@click.option("--hidden", default=200, show_default=True, help="Hidden size = embedding size.")
@click.option("--layers", default=1, show_default=True, help="Stacked recurrent layers.")
@click.option("--batch-size", default=20, show_default=True, help="Streams per batch.")
@click.option("--bptt", default=35, show_default=True, help="Tokens per BPTT window.")
@click.option("--seconds", default=60.0, show_default=True,
              help="Training budget per cell for the perplexity (0 = skip that part).")
@click.option("--corpus-dir", type=click.Path(path_type=Path),
              help="Folder with ptb.train.txt and ptb.valid.txt (default: imported ptb).")
@click.option("--vocab", default=10_000, show_default=True,
              help="Vocabulary of the speed batch when there is no corpus (--seconds 0).")
@click.option("--valid-tokens", default=0, show_default=True,
              help="Evaluate on at most this many validation tokens (0 = all).")
@click.option("--seed", default=0, show_default=True, help="Seed of the weights and the batch.")
@json_option
def lab_cells(hidden: int, layers: int, batch_size: int, bptt: int, seconds: float,
              corpus_dir: Path | None, vocab: int, valid_tokens: int, seed: int,
              as_json: bool) -> None:
    """RNN, LSTM, LSTM with peepholes and GRU side by side at one size.

    Parameter counts, training tokens/s on the same language-model batch, and
    the validation perplexity each reaches on Penn Treebank after training
    for the same number of seconds (same data, Adam, clip 0.25).

    \b
    Example:
      seqtool lab cells --hidden 200 --seconds 60
      seqtool lab cells --corpus-dir ../shared/corpora/ptb --seconds 30 --json
      seqtool lab cells --hidden 650 --seconds 0      # parameters and speed only
    """
    from seqtool.commands.lab import cells
    from seqtool.console import note, print_json, render_cells

    result = cells(hidden=hidden, layers=layers, batch_size=batch_size, bptt=bptt,
                   seconds=seconds, corpus_dir=corpus_dir, vocab=vocab,
                   valid_tokens=valid_tokens, seed=seed,
                   on_cell=lambda what: note(f"{what} ..."))
    if as_json:
        print_json(result)
    else:
        render_cells(result)


def main() -> None:
    """Console entry point: one error path, exit code 2 for user errors."""
    debug = os.environ.get("SEQTOOL_DEBUG") == "1" or "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        _fail(InputError("interrupted", "nothing was changed"), debug)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(2)
    except click.ClickException as exc:  # bad flag or argument: same error + hint lines
        from seqtool.console import print_error

        ctx = getattr(exc, "ctx", None)
        print_error(exc.format_message(),
                    f"see: {ctx.command_path if ctx else 'seqtool'} --help")
        sys.exit(2 if exc.exit_code not in (0,) else 0)
    except SeqtoolError as exc:
        _fail(exc, debug)
    except KeyboardInterrupt:
        _fail(InputError("interrupted (Ctrl-C)", "nothing was saved by this command"), debug)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)


def _fail(exc: SeqtoolError, debug: bool) -> Any:
    from seqtool.console import print_error

    if debug:
        import traceback

        traceback.print_exc()
    print_error(exc.message, exc.hint)
    sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
