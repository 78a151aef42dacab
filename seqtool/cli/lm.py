"""Language-model commands: train lm, predict, generate, evaluate lm."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from seqtool.cli.app import (CONTEXT, cli, config_from_flags, config_option, config_to_resume,
                             device_option, evaluate, interrupt_on_signals, json_option,
                             model_option, options, quantize_option, resolve_device, run_options,
                             stdin_lines, train)
from seqtool.config import PredictConfig, SamplingConfig
from seqtool.errors import ConfigError, InputError


@train.command("lm", context_settings=CONTEXT)
@click.option("--corpus", help="Catalog name of an imported corpus (seqtool corpus list).")
@click.option("--train-file", type=click.Path(path_type=Path), help="Plain text training file.")
@click.option("--valid-file", type=click.Path(path_type=Path), help="Plain text validation file.")
@click.option("--hf-dataset", metavar="NAME[:CONFIG]",
              help="A Hugging Face text dataset, downloaded when online (its train and "
                   "validation splits).")
@click.option("--config", "preset",
              help="Preset name (lm-wikitext2, lm-ptb, lm-tiny) or TOML file.")
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(path_type=Path),
              help="Tokenizer folder from `seqtool tokenizer train` (default: train one).")
@click.option("--init-embeddings", type=click.Path(path_type=Path),
              help="Start the input embeddings from word2vec text vectors (export-vectors).")
@run_options("lm", "train.lr=1e-3")
def train_lm_cmd(corpus: str | None, train_file: Path | None, valid_file: Path | None,
                 hf_dataset: str | None, preset: str | None, tokenizer_dir: Path | None,
                 overrides: tuple[str, ...], out: Path | None, resume: Path | None,
                 init_embeddings: Path | None, threads: int, device: str,
                 as_json: bool) -> None:
    """Train a recurrent language model with truncated BPTT.

    Writes RUN/best and RUN/last checkpoints and RUN/metrics.jsonl. Ctrl-C saves
    RUN/last; --resume RUN continues exactly.

    \b
    Example:
      seqtool train lm --corpus wikitext-2 --config lm-wikitext2 --out runs/wt2
      seqtool train lm --train-file a.txt --valid-file b.txt --set model.cell=gru
      seqtool train lm --hf-dataset Salesforce/wikitext:wikitext-2-v1 --config lm-wikitext2
      seqtool train lm --resume runs/wt2 --set train.epochs=20
      seqtool train lm --corpus wikitext-2 --config lm-tiny --set model.emb_dim=100 \\
          --init-embeddings vectors.txt
    """
    from seqtool.commands.train import train_lm
    from seqtool.console import RichReporter, print_json, stdout_console
    from seqtool.console.word2vec import print_init_embeddings

    if resume is not None:
        cfg = config_to_resume(resume, overrides, corpus, train_file, valid_file, hf_dataset,
                               preset, tokenizer_dir, init_embeddings)
    else:
        if corpus and hf_dataset:
            raise ConfigError("give --corpus or --hf-dataset, not both",
                              "--corpus reads an imported corpus, --hf-dataset the hub")
        data = {"corpus": "" if hf_dataset else corpus, "hf_dataset": hf_dataset,
                "train_file": str(train_file) if train_file else None,
                "valid_file": str(valid_file) if valid_file else None}
        cfg = config_from_flags("lm", preset, overrides, data, tokenizer_dir, init_embeddings)
    interrupt_on_signals()
    summary = train_lm(cfg, out, resume, RichReporter(), resolve_device(device), threads)
    if as_json:
        print_json(summary)
    else:
        if "init_embeddings" in summary:
            print_init_embeddings(summary["init_embeddings"])
        stdout_console().print(
            f"done ({summary['stop_reason']}): {summary['steps']} steps, best "
            f"{summary['metric']} {summary['best']:.2f}; checkpoints in {summary['run_dir']}")




def batch_options(f: Any) -> Any:
    """--batch-size and --read-ahead of the stdin mode of predict and generate."""
    from seqtool.commands.predict import BATCH_SIZE, READ_AHEAD

    return options(
        click.option("--batch-size", type=click.IntRange(min=1), default=BATCH_SIZE,
                     show_default=True,
                     help="Prompts from stdin run together (those with the same number of "
                          "tokens)."),
        click.option("--read-ahead", type=click.IntRange(min=1), default=READ_AHEAD,
                     show_default=True,
                     help="Lines read before answering; the output keeps the input order. "
                          "With 1, each line is answered as soon as it arrives."),
    )(f)


def need_prompts(text: str | None, command: str) -> None:
    """No TEXT: the prompts come from stdin, which must not be a terminal."""
    if text is None and sys.stdin.isatty():
        raise InputError(f"nothing to {command}",
                         f'give a prompt (seqtool {command} "the history of") or pipe prompts, '
                         f"one per line: cat FILE | seqtool {command}")


@cli.command(context_settings=CONTEXT)
@click.argument("text", required=False)
@config_option("--top-k", PredictConfig, "top_k", default=...)
@batch_options
@model_option
@device_option
@quantize_option
@json_option
def predict(text: str | None, top_k: int, batch_size: int, read_ahead: int,
            model_path: Path | None, device: str, quantize: str | None, as_json: bool) -> None:
    """Show the most probable next words after TEXT, or after each line of stdin.

    Without TEXT, prompts are read from stdin, one per line, run in batches of
    prompts with the same number of tokens, and answered in input order, one
    line each: `PROMPT<TAB>WORD`; with --json one object per input line, the
    one `seqtool predict TEXT --json` prints for it (the same numbers). An empty
    line is skipped and counted in a warning; with --json it is answered by
    {"line", "prompt", "error", "hint"}, so output line N is input line N.

    \b
    Example:
      seqtool predict "some of them looks like" --top-k 20
      seqtool predict "the president of the" --json
      cat prompts.txt | seqtool predict --json > next.jsonl
    """
    from seqtool.commands.predict import predict_batch, predict_next
    from seqtool.console import print_json, render_prediction, warn
    from seqtool.loading import load_lm

    need_prompts(text, "predict")
    loaded = load_lm(model_path, resolve_device(device, quantize), quantize)
    if text is None:
        answer_stdin(lambda texts: predict_batch(loaded, texts, top_k=top_k,
                                                 batch_size=batch_size),
                     loaded, "predict", as_json, read_ahead,
                     lambda r: [f"{r['prompt']}\t{r['prediction']}"])
        return
    result = predict_next(loaded, text=text, top_k=top_k)
    warn_prompt(result, warn)
    if as_json:
        print_json(result)
    else:
        render_prediction(result)


@cli.command(context_settings=CONTEXT)
@click.argument("text", required=False)
@config_option("--max-tokens", SamplingConfig, "max_tokens", default=...)
@config_option("--temperature", SamplingConfig, "temperature", default=...)
@config_option("--top-k", SamplingConfig, "top_k", default=...)
@config_option("--top-p", SamplingConfig, "top_p", default=...)
@click.option("--greedy", is_flag=True, help="Always take the most probable token.")
@click.option("--seed", type=int, default=None, help="Random seed for reproducible samples.")
@config_option("--num", SamplingConfig, "num_samples", default=...)
@batch_options
@model_option
@device_option
@quantize_option
@json_option
def generate(text: str | None, max_tokens: int, temperature: float, top_k: int, top_p: float,
             greedy: bool, seed: int | None, num_samples: int, batch_size: int,
             read_ahead: int, model_path: Path | None, device: str, quantize: str | None,
             as_json: bool) -> None:
    """Continue TEXT, or each line of stdin, with the language model (greedy or sampled).

    Without TEXT, prompts are read from stdin, one per line, run in batches of
    prompts with the same number of tokens, and answered in input order: one
    line per sample, `PROMPT CONTINUATION` (the model's line breaks written as
    <eos>); with --json one object per input line, the one `seqtool generate
    TEXT --json` prints for it. Each prompt samples as it would alone: with
    --seed S, the same continuations as `seqtool generate PROMPT --seed S`. An
    empty line is skipped and counted in a warning; with --json it is answered by
    {"line", "prompt", "error", "hint"}.

    \b
    Example:
      seqtool generate "the history of" --max-tokens 40 --temperature 0.8 --top-p 0.9
      seqtool generate "in the united states" --greedy
      cat prompts.txt | seqtool generate --max-tokens 20 --seed 1 --json > out.jsonl
    """
    from seqtool.commands.predict import generate_batch, generate_text
    from seqtool.console import print_json, stdout_console, warn
    from seqtool.loading import load_lm

    need_prompts(text, "generate")
    sampling = SamplingConfig(max_tokens=max_tokens, temperature=temperature, top_k=top_k,
                              top_p=top_p, greedy=greedy, num_samples=num_samples)
    loaded = load_lm(model_path, resolve_device(device, quantize), quantize)
    if text is None:
        answer_stdin(lambda texts: generate_batch(loaded, texts, sampling=sampling, seed=seed,
                                                  batch_size=batch_size),
                     loaded, "generate", as_json, read_ahead,
                     lambda r: [f"{r['prompt']} {s.replace(chr(10), ' <eos> ')}"
                                for s in r["samples"]])
        return
    result = generate_text(loaded, text=text, sampling=sampling, seed=seed)
    warn_prompt(result, warn)
    if as_json:
        print_json(result)
        return
    con = stdout_console()
    from rich.markup import escape
    for sample in result["samples"]:
        con.print(f"[bold]{escape(result['prompt'])}[/] {escape(sample)}")


def warn_prompt(result: dict[str, Any], warn: Callable[[str], None], where: str = "") -> None:
    """Warnings for a prompt's unknown words and for a prompt over the length limit."""
    from seqtool.commands.predict import MAX_PROMPT_CHARS, MAX_PROMPT_TOKENS

    if result["unknown"]:
        warn(f"{where}not in the vocabulary (read as <unk>): " + ", ".join(result["unknown"]))
    if result.get("cut"):
        warn(f"{where}the prompt is over the limit ({MAX_PROMPT_TOKENS:,} tokens or "
             f"{MAX_PROMPT_CHARS:,} characters); only its end was read")


def answer_stdin(run: Callable[[list[str]], list[dict[str, Any]]], loaded: Any, command: str,
                 as_json: bool, read_ahead: int, plain: Callable[[dict[str, Any]], list[str]]
                 ) -> None:
    """stdin -> stdout for predict/generate: per input line, `plain(result)` lines or
    one JSON object (an error object for a line with no prompt), flushed as written;
    warnings for unknown words and over-long prompts (the first 5 lines) and the
    skipped lines."""
    from seqtool.commands.predict import answer_lines
    from seqtool.console import print_json, warn

    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
    out = sys.stdout
    skipped: list[int] = []
    unknown = 0
    lines = (text for _, text in stdin_lines(f"seqtool {command}"))
    for a in answer_lines(run, loaded.tokenizer, lines, read_ahead):
        if a.result is None:
            skipped.append(a.line)
        elif a.result["unknown"] or a.result.get("cut"):
            unknown += 1
            if unknown <= 5:
                warn_prompt(a.result, warn, f"line {a.line}: ")
        if as_json:
            print_json(a.to_json())
        elif a.result is not None:
            out.writelines(line + "\n" for line in plain(a.result))
            out.flush()
    if unknown > 5:
        warn(f"{unknown} lines in all had words not in the vocabulary or were over the limit")
    if skipped:
        where = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
        warn(f"skipped {len(skipped)} line{'s' if len(skipped) > 1 else ''} with no prompt "
             f"(empty, or no tokens): line{'s' if len(skipped) > 1 else ''} {where}")


@evaluate.command("lm", context_settings=CONTEXT)
@model_option
@click.option("--corpus", help="Imported corpus name (seqtool corpus list).")
@click.option("--split", default="test", show_default=True, help="Split of --corpus.")
@click.option("--file", "file", type=click.Path(path_type=Path), help="Any text file instead.")
@click.option("--hf-dataset", metavar="NAME[:CONFIG]",
              help="Or a Hugging Face text dataset (downloaded when online); --split picks "
                   "train, valid or test.")
@click.option("--batch-size", type=click.IntRange(min=1), default=10, show_default=True,
              help="Parallel streams.")
@device_option
@quantize_option
@json_option
def evaluate_lm_cmd(model_path: Path | None, corpus: str | None, split: str, file: Path | None,
                    hf_dataset: str | None, batch_size: int, device: str, quantize: str | None,
                    as_json: bool) -> None:
    """Word-level perplexity: exp(mean NLL per token), <eos> counted per line.

    \b
    Example:
      seqtool evaluate lm --corpus wikitext-2 --split test
      seqtool evaluate lm --model runs/ptb --file my.txt --json
    """
    from seqtool.commands.evaluate import evaluate_lm, lm_text
    from seqtool.console import print_json, stdout_console
    from seqtool.loading import load_lm

    lm_text(corpus, split, file, hf_dataset)  # bad data flags fail before the model loads
    loaded = load_lm(model_path, resolve_device(device, quantize), quantize)
    result = evaluate_lm(loaded, corpus=corpus, split=split, file=file, batch_size=batch_size,
                         hf_dataset=hf_dataset)
    if as_json:
        print_json(result)
    else:
        stdout_console().print(
            f"perplexity [bold]{result['perplexity']:.2f}[/] (loss {result['loss']:.4f}) on "
            f"{result['tokens']:,} tokens of {result['corpus']} {result['split']}"
            + (f"; per word {result['word_perplexity']:.2f}" if "word_perplexity" in result
               else ""))
