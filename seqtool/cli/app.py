"""The root `seqtool` group, shared options, and the one error exit path.

The command line is a package (seqtool/cli/) rather than one cli.py: with
translation, corpora and the lab it outgrew one 400-line module. click and
rich are still imported only here and in seqtool/console.py.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

from seqtool.version import __version__
from seqtool.errors import ConfigError, DataError, Interrupted, SeqtoolError
from seqtool.runtime import DEVICES, resolve_device

__all__ = ["CONTEXT", "ConfigValue", "cli", "config_option", "resolve_device"]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class ConfigValue(click.ParamType):
    """A flag that sets a config key (config.py): its type, choices and range are the
    key's, checked by the same code as the key in a TOML file (configfile.coerce_key)."""

    def __init__(self, cls: type, key: str) -> None:
        self.cls, self.key = cls, key
        self.field = next(f for f in dataclasses.fields(cls) if f.name == key)
        self.choices: tuple[str, ...] = tuple(self.field.metadata.get("choices", ()))
        self.name = key

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        from seqtool.configfile import coerce_key

        flag = param.opts[0] if param is not None and param.opts else self.key
        try:
            return coerce_key(self.cls, self.key, value, flag)
        except ConfigError as exc:
            self.fail(exc.message + (f" ({exc.hint})" if exc.hint else ""), param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        if self.choices:
            return "[" + "|".join(c for c in self.choices if c) + "]"
        return None


def config_option(flag: str, cls: type, key: str, help: str | None = None,
                  default: Any = None, **kw: Any) -> Any:
    """--flag for config key cls.key; the help text is the key's own unless given.
    default=... takes the key's default; without `default` a flag left out is None
    (the checkpoint's or preset's value)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == key)
    if default is ...:  # the key's own default
        default = f.default
    meta = f.metadata
    text = help or meta.get("help", "").capitalize().rstrip(".") + "."
    decls = [flag] if flag.lstrip("-").replace("-", "_") == key else [flag, key]
    return click.option(*decls, type=ConfigValue(cls, key), default=default,
                        show_default=default is not None, help=text, **kw)


device_option = click.option("--device", default="auto", show_default=True,
                             type=click.Choice(DEVICES),
                             help="Where to run; auto picks CUDA when present.")
quantize_option = click.option("--quantize", type=click.Choice(["int8"]), default=None,
                               help="Run dynamic int8 on the CPU (README, \"int8 inference\"); "
                                    "a folder from `seqtool export --int8` is int8 already.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object instead of rich output.")
model_option = click.option("--model", "model_path", type=click.Path(path_type=Path),
                            help="Checkpoint or run folder (default: the shipped model).")


def options(*decorators: Any) -> Any:
    """Apply click options in the order given (as if stacked top to bottom)."""
    def wrap(f: Any) -> Any:
        for opt in reversed(decorators):
            f = opt(f)
        return f
    return wrap


def set_option(example: str) -> Any:
    return click.option("--set", "overrides", multiple=True, metavar="TABLE.KEY=VALUE",
                        help=f"Override one config key, e.g. --set {example} (repeatable).")


def out_option(task: str, what: str = "Run folder") -> Any:
    return click.option("--out", type=click.Path(path_type=Path),
                        help=f"{what} (default runs/{task}-...).")


def run_options(task: str, set_example: str) -> Any:
    """What every model-training command shares: --set, --out, --resume, --threads,
    --device and --json (in that order in --help)."""
    return options(
        set_option(set_example),
        out_option(task),
        click.option("--resume", type=click.Path(path_type=Path),
                     help="Continue the run in this folder exactly where it stopped."),
        click.option("--threads", type=click.IntRange(min=0), default=0,
                     help="CPU threads (0 = torch's default; under torchrun 1 per process "
                          "unless OMP_NUM_THREADS says otherwise)."),
        click.option("--nproc", type=click.IntRange(min=1), default=1, expose_value=False,
                     is_eager=True, callback=_run_under_torchrun,
                     help="Train with N processes on this machine (runs torchrun "
                          "--standalone --nproc-per-node N; data parallel, batch_size is "
                          "their total)."),
        device_option,
        json_option,
    )


def _run_under_torchrun(ctx: click.Context, param: click.Parameter, nproc: int) -> None:
    """--nproc N: start this same command again under torchrun with N processes (this
    process becomes torchrun). Inside a torchrun launch it is ignored."""
    if nproc == 1 or "WORLD_SIZE" in os.environ or ctx.resilient_parsing:
        return
    args, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            args.append(a)
    sys.exit(torchrun(["--standalone", "--nproc-per-node", str(nproc), "-m", "seqtool", *args]))


def torchrun(argv: list[str]) -> int:
    """Run torchrun's launcher in this process with `argv`; its exit code. The ranks
    print their own error lines, so torchrun's failure report and tracebacks are left
    out: a failed rank's exit code (2 where it was killed), or 130 on Ctrl-C/SIGTERM.
    OMP_NUM_THREADS is 1 per rank unless set (what torchrun would set, without its
    banner)."""
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for name in list(logging.root.manager.loggerDict):  # its notices, not the ranks' errors
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        run(parse_args(argv))
    except ChildFailedError as exc:
        code = exc.get_first_failure()[1].exitcode
        return code if code > 0 else 2
    except (SignalException, KeyboardInterrupt):
        return 130
    return 0


def config_to_resume(resume: Path, overrides: tuple[str, ...], *others: Any) -> Any:
    """The run's own config for --resume (with its --set overrides); any other data or
    config flag given with it (`others` not empty) is an error."""
    from seqtool.runs import resume_config

    if any(others):
        raise ConfigError("--resume takes its data and config from the run",
                          "only --set overrides may be given with --resume")
    return resume_config(resume, overrides)


def config_from_flags(task: str, preset: str | None, overrides: tuple[str, ...],
                      data: dict[str, Any], tokenizer_dir: Path | None = None,
                      init_embeddings: Path | None = None) -> Any:
    """A new run's config: the preset or TOML file, the data flags, --tokenizer and
    --init-embeddings, then the --set overrides (flags left out change nothing)."""
    from seqtool.configfile import load_config

    tok = {"path": str(tokenizer_dir) if tokenizer_dir else None}
    init = {"init_embeddings": str(init_embeddings) if init_embeddings else None}
    return load_config(task, preset, overrides, {"data": data, "tokenizer": tok, "train": init})


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


@cli.group(context_settings=CONTEXT)
def train() -> None:
    """Train a model (language model: `seqtool train lm`; translation: `train translate`).

    \b
    Example:
      seqtool train lm --train-file train.txt --valid-file valid.txt --config lm-tiny
      seqtool train translate --corpus multi30k --src de --tgt en --config translate-multi30k
    """




def interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM (schedulers, `kill`) both save a resumable last/ checkpoint.

    SIGINT is re-armed too: a shell starts background jobs with it ignored. A signal
    that arrives during a training step or a checkpoint write takes effect when it ends."""
    import signal

    from seqtool.folders import interrupt_handler

    # a KeyboardInterrupt, at once or (during a training step or a checkpoint write)
    # as soon as it ends: folders.uninterruptible
    signal.signal(signal.SIGINT, interrupt_handler)
    signal.signal(signal.SIGTERM, interrupt_handler)
    if _rank():  # under torchrun rank 0 alone reports (a rank's errors still show)
        sys.stdout = open(os.devnull, "w")


def _rank() -> int:
    """This process's rank under torchrun (0 without one)."""
    try:
        return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0
    except ValueError:
        return 0



@cli.group(context_settings=CONTEXT)
def evaluate() -> None:
    """Score a model on held-out data (`seqtool evaluate lm`, `seqtool evaluate translate`).

    \b
    Example:
      seqtool evaluate lm --model runs/wt2 --file test.txt
      seqtool evaluate translate --model runs/m30k --corpus multi30k --split test_2016_flickr
    """



def stdin_lines(command: str) -> Iterator[tuple[int, str]]:
    """(line number, text without its line break) from stdin, read lazily; a line that
    is not UTF-8 is a DataError naming it (`command` goes into the iconv hint)."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # already text (tests)
        yield from enumerate((ln.rstrip("\r\n") for ln in sys.stdin), 1)
        return
    for n, raw in enumerate(buffer, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"line {n} of the input is not UTF-8 (byte {exc.start + 1}: "
                            f"{exc.reason})", "convert it, e.g. iconv -f latin1 -t utf-8 IN "
                            f"| {command}") from None
        text = text.rstrip("\r\n")
        yield n, text.lstrip("\ufeff") if n == 1 else text


def main() -> None:
    """Console entry point: one error path; the error's exit code (2 for user errors,
    130 for Ctrl-C, as a shell reports a process killed by SIGINT)."""
    debug = os.environ.get("SEQTOOL_DEBUG") == "1" or "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        _fail(Interrupted("interrupted", "nothing was changed"), debug)
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
        _fail(Interrupted("interrupted (Ctrl-C)", "nothing was saved by this command"), debug)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)


def _fail(exc: SeqtoolError, debug: bool) -> Any:
    from seqtool.console import print_error

    if debug:
        import traceback

        traceback.print_exc()
    rank = _rank()
    if rank and not debug and (isinstance(exc, (ConfigError, Interrupted))
                               or exc.every_rank):
        _exit(exc.exit_code)  # every rank has it; rank 0 says it once
    print_error(f"rank {rank}: {exc.message}" if rank else exc.message, exc.hint)
    _exit(exc.exit_code)


def _exit(code: int) -> NoReturn:
    """sys.exit; but in a torchrun rank whose process group still lives (an error
    ended training: peers lost, a bad batch size), os._exit once the output is
    flushed: with its peers gone, the group's C++ teardown at interpreter exit can
    abort ("terminate called without an active exception", exit -6 instead of 2;
    seen in tests/test_distributed.py). Nothing is left to write by then: the
    checkpoints are written atomically before any collective can fail."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
