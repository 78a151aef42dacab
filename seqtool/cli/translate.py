"""Translation commands: train translate, translate, evaluate translate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from seqtool.cli.app import (CONTEXT, cli, config_from_flags, config_option, config_to_resume,
                             device_option, evaluate, interrupt_on_signals, json_option,
                             quantize_option, resolve_device, run_options, train)
from seqtool.config import DataConfig, SearchConfig
from seqtool.errors import ConfigError, DataError, InputError
from seqtool.translation import READ_AHEAD, SEARCH_FLAGS


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
@click.option("--init-embeddings", type=click.Path(path_type=Path),
              help="Start source and target embeddings from word2vec text vectors.")
@run_options("translate", "model.dropout=0.2")
def train_translate_cmd(corpus: str | None, src_lang: str | None, tgt_lang: str | None,
                        train_src: Path | None, train_tgt: Path | None, valid_src: Path | None,
                        valid_tgt: Path | None, preset: str | None, tokenizer_dir: Path | None,
                        overrides: tuple[str, ...], out: Path | None, resume: Path | None,
                        init_embeddings: Path | None, threads: int, device: str,
                        as_json: bool) -> None:
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
    from seqtool.commands.train_translate import train_translate
    from seqtool.console import RichReporter, print_json, stdout_console

    files = {"train_src": train_src, "train_tgt": train_tgt, "valid_src": valid_src,
             "valid_tgt": valid_tgt}
    if resume is not None:
        cfg = config_to_resume(resume, overrides, corpus, src_lang, tgt_lang, *files.values(),
                               preset, tokenizer_dir, init_embeddings)
    else:
        data = {"corpus": corpus, "src_lang": src_lang, "tgt_lang": tgt_lang,
                **{k: str(v) if v else None for k, v in files.items()}}
        cfg = config_from_flags("translate", preset, overrides, data, tokenizer_dir,
                                init_embeddings)
    interrupt_on_signals()
    summary = train_translate(cfg, out, resume, RichReporter(), resolve_device(device), threads)
    if as_json:
        print_json(summary)
        return
    if "init_embeddings" in summary:
        from seqtool.console.word2vec import print_init_embeddings

        print_init_embeddings(summary["init_embeddings"])
    skipped = summary["skipped_empty"]
    best = summary["best"]
    stdout_console().print(
        f"done ({summary['stop_reason']}): {summary['steps']} steps on "
        f"{summary['train_pairs']:,} pairs, best {summary['metric']} "
        + (f"{best:.2f}" if best is not None else "-")
        + f"; checkpoints in {summary['run_dir']}"
        + (f"; skipped {skipped['train']} training and {skipped['valid']} validation pairs "
           "with an empty side" if skipped["train"] or skipped["valid"] else ""))
    store = summary["token_store"]
    how = (f"built in {store['seconds']:.1f} s by {store['workers']} worker(s)"
           if store["built"] else "reused")
    stdout_console().print(f"token store ({how}): {store['path']}")




def search_options(f: Any) -> Any:
    """The decoding flags (SEARCH_FLAGS: --beam, --nbest, --alpha, --max-len-ratio,
    --no-repeat-ngram, --precision; default: the model's [search]) and --bleu-tokenize,
    each typed and checked as its config key."""
    helps = {"beam_size": "Beam size (1 = greedy; default: the model's [search] beam_size).",
             "n_best": "Translations per sentence (at most --beam).",
             "precision": "Decoding precision (default auto: the model's training precision)."}
    for opt in reversed([
        *(config_option(flag, SearchConfig, key, helps.get(key))
          for key, flag in SEARCH_FLAGS.items()),
        config_option("--bleu-tokenize", DataConfig, "bleu_tokenize",
                      "sacrebleu tokenizer for BLEU (default: the model's data.bleu_tokenize, "
                      "else char for ja/ko, zh for zh, 13a otherwise)."),
    ]):
        f = opt(f)
    return f


def _search(beam_size: int | None, n_best: int | None, alpha: float | None,
            max_len_ratio: float | None, no_repeat_ngram: int | None,
            precision: str | None) -> dict[str, Any]:
    """The SearchConfig keys that were given on the command line."""
    given = {"beam_size": beam_size, "n_best": n_best, "alpha": alpha,
             "max_len_ratio": max_len_ratio, "no_repeat_ngram": no_repeat_ngram,
             "precision": precision}
    return {k: v for k, v in given.items() if v is not None}


@cli.command("translate", context_settings=CONTEXT)
@click.argument("text", required=False)
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Checkpoint or run folder (default: the shipped model for --src/--tgt).")
@click.option("--src", help="Source language (picks a shipped model without --model).")
@click.option("--tgt", help="Target language (picks a shipped model without --model).")
@search_options
@click.option("--batch-size", default=64, show_default=True, help="Lines decoded together.")
@click.option("--read-ahead", default=READ_AHEAD, show_default=True,
              help="Lines read before translating, sorted by length into batches (faster); "
                   "the output keeps the input order. With --batch-size 1 and --read-ahead 1 "
                   "each line is answered as soon as it arrives.")
@click.option("--reference", type=click.Path(path_type=Path),
              help="Reference translations (one per input line): print BLEU and chrF.")
@click.option("--tokenized", is_flag=True,
              help="Japanese/Chinese output: keep the spaces between words, as the training "
                   "data had them (by default they are joined for reading).")
@click.option("--show-attention", is_flag=True,
              help="One sentence: show the attention as a heat map.")
@click.option("--attention-png", type=click.Path(path_type=Path),
              help="One sentence: save the attention matrix as a PNG (needs matplotlib).")
@device_option
@quantize_option
@json_option
def translate_cmd(text: str | None, model_path: Path | None, src: str | None, tgt: str | None,
                  beam_size: int | None, n_best: int | None, alpha: float | None,
                  max_len_ratio: float | None, no_repeat_ngram: int | None,
                  precision: str | None, bleu_tokenize: str | None, batch_size: int,
                  read_ahead: int, reference: Path | None, tokenized: bool,
                  show_attention: bool, attention_png: Path | None, device: str,
                  quantize: str | None, as_json: bool) -> None:
    """Translate TEXT, or the lines of stdin to stdout (one output line per input line).

    Lines are read --read-ahead at a time, translated in batches of --batch-size
    sentences of similar length, and written in input order; a progress line
    shows on stderr when it is a terminal. With --nbest N > 1 the plain output
    has N lines per input, `LINE ||| text ||| score` (Moses n-best format);
    --json writes one object per input line: {"source", "translations":
    [{"text", "score"}, ...]}. --reference prints BLEU and chrF with their
    sacrebleu signatures on stderr after translating (on the words as the model
    writes them). A word-level Japanese or Chinese model's output is shown with
    its words joined ("私は本を読む。"); --tokenized keeps the spaces.

    \b
    Example:
      seqtool translate "Ein Mann fährt Fahrrad." --model runs/m30k
      seqtool translate "Ein Mann fährt Fahrrad." --src de --tgt en --beam 5 --nbest 3
      seqtool translate "彼は毎朝早く起きる。" --src ja --tgt en
      seqtool translate "i like to read books ." --src en --tgt ja
      cat test.de | seqtool translate --model runs/m30k > test.hyp
      seqtool translate --model runs/m30k --reference test.en < test.de > test.hyp
      seqtool translate "Zwei Hunde spielen." --model runs/m30k --show-attention
      seqtool translate "Zwei Hunde spielen." --src de --tgt en --attention-png att.png
    """
    from seqtool.console import print_json, warn
    from seqtool.loading import load_translator
    from seqtool.translation import joins_words, search_settings

    flags = _search(beam_size, n_best, alpha, max_len_ratio, no_repeat_ngram, precision)
    for name, value in (("--batch-size", batch_size), ("--read-ahead", read_ahead)):
        if value < 1:
            raise click.BadParameter("must be at least 1", param_hint=name) from None
    if text is None and sys.stdin.isatty():
        raise InputError("nothing to translate", 'give a sentence ("Ein Mann fährt '
                         'Fahrrad.") or pipe lines: cat FILE | seqtool translate --model X')
    for flag, on in (("--show-attention", show_attention), ("--attention-png", attention_png)):
        if on and text is None:
            raise ConfigError(f"{flag} works on one sentence", "give TEXT instead of "
                              "piping lines")
    if attention_png is not None:
        from seqtool.plot import check_plot_target

        check_plot_target(attention_png, "--attention-png", "attention.png")
    dev = resolve_device(device, quantize)
    loaded = load_translator(model_path, src, tgt, dev, quantize)
    search = search_settings(loaded.config.search, **flags)
    join = joins_words(loaded) and not tokenized
    if text is not None:
        from seqtool.translation import translate_text

        with_attention = show_attention or attention_png is not None
        result = translate_text(loaded, text, search, dev, with_attention, join)
        _warn_translation(result, loaded, warn)
        if result.unknown:
            warn("not in the vocabulary (read as <unk>): " + ", ".join(result.unknown))
        if as_json:
            print_json(result.to_json())
        else:
            from seqtool.console.translate import render_translation

            render_translation(result, show_attention)
        if attention_png is not None and result.attention:
            from seqtool.console import note
            from seqtool.plot import save_attention_plot

            save_attention_plot(attention_png, result.attention)
            note(f"attention saved to {attention_png}")
        hyps = [result.raw[0]]
    else:
        hyps = _translate_stream(loaded, search, dev, batch_size, as_json, reference is not None,
                                 join, read_ahead)
    if reference is not None:
        from seqtool.console.translate import render_scores
        from seqtool.translation import score_translations

        render_scores(score_translations(hyps, reference, loaded, tgt, bleu_tokenize))


def _warn_translation(t: Any, loaded: Any, warn: Any, count: list[int] | None = None) -> None:
    """A warning for a source longer than every training sentence, or cut at the
    stream limit (the first 5)."""
    if not (t.too_long or t.cut):
        return
    if count is not None:
        count[0] += 1
        if count[0] > 5:
            return
    if t.cut:
        from seqtool.translation import MAX_SOURCE_CHARS, MAX_SOURCE_TOKENS

        where = f"line {t.line}: " if count is not None else ""
        warn(f"{where}the source is over the limit ({MAX_SOURCE_TOKENS:,} tokens or "
             f"{MAX_SOURCE_CHARS:,} characters); only its start was translated")
        return
    longest = loaded.meta.get("data_stats", {}).get("max_src_len")
    where = f"line {t.line}: " if count is not None else ""
    warn(f"{where}the source has {t.source_tokens} tokens, longer than any training "
         f"sentence ({longest}); the translation may be poor")


def _translate_stream(loaded: Any, search: Any, device: str, batch_size: int, as_json: bool,
                      keep: bool, join: bool, read_ahead: int) -> list[str]:
    """stdin -> stdout, one line (or n-best block / JSON object) per input line, each
    flushed as written (translate_lines hands them over a read-ahead block at a
    time). Returns the best translations when `keep` (for --reference)."""
    import json

    from seqtool.runtime import keep_freed_memory

    keep_freed_memory()  # the batches' large buffers are reused, not page-faulted (runtime.py)

    from seqtool.console import line_progress, warn
    from seqtool.translation import translate_lines

    for stream in (sys.stdin, sys.stdout):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8")
    kept: list[str] = []
    long_lines = [0]
    out = sys.stdout
    with line_progress("translate") as advance:
        try:
            for t in translate_lines(loaded, sys.stdin, search, device, batch_size, join,
                                     read_ahead):
                _warn_translation(t, loaded, warn, long_lines)
                if as_json:
                    out.write(json.dumps(t.to_json(), ensure_ascii=False) + "\n")
                elif search.n_best > 1:
                    out.writelines(f"{t.line - 1} ||| {text} ||| {score:.4f}\n"
                                   for text, score in zip(t.texts, t.scores, strict=False))
                else:
                    out.write(t.texts[0] + "\n")
                if keep:
                    kept.append(t.raw[0])
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
@quantize_option
@json_option
def evaluate_translate_cmd(model_path: Path | None, corpus: str | None, split: str,
                           src: str | None, tgt: str | None, src_file: Path | None,
                           ref_file: Path | None, beam_size: int | None, n_best: int | None,
                           alpha: float | None, max_len_ratio: float | None,
                           no_repeat_ngram: int | None, precision: str | None,
                           bleu_tokenize: str | None, batch_size: int, device: str,
                           quantize: str | None, as_json: bool) -> None:
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
    from seqtool.console import print_json
    from seqtool.console.translate import render_scores
    from seqtool.loading import load_translator
    from seqtool.runtime import keep_freed_memory

    flags = _search(beam_size, n_best, alpha, max_len_ratio, no_repeat_ngram, precision)
    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size") from None
    if (src_file is None) != (ref_file is None):
        raise ConfigError("give both --src-file and --ref-file",
                          "the reference has the translation of each source line")
    keep_freed_memory()  # the batches' large buffers are reused, not page-faulted (runtime.py)
    loaded = load_translator(model_path, src, tgt, resolve_device(device, quantize), quantize)
    result = evaluate_translate(loaded, corpus=corpus, split=split, src=src, tgt=tgt,
                                src_file=src_file, ref_file=ref_file, search=flags,
                                batch_size=batch_size, bleu_tokenize=bleu_tokenize)
    if as_json:
        print_json(result)
    else:
        render_scores(result, to_stdout=True)
