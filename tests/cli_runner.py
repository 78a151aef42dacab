"""Shared by the CLI tests: run `seqtool` in-process or as a subprocess, and check
the one-error-line-plus-hint contract of user errors."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from seqtool.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str | Path, stdin: str | bytes | None = None) -> Result:
    """`seqtool ARGS` in this process through cli.main(), as the console script does;
    `stdin` (text or raw bytes) arrives as a byte stream, as a pipe would give it."""
    out, err = io.StringIO(), io.StringIO()
    argv, old_stdin = sys.argv, sys.stdin
    debug = os.environ.pop("SEQTOOL_DEBUG", None)
    sys.argv = ["seqtool", *map(str, args)]
    if stdin is not None:
        data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
        sys.stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, sys.stdin = argv, old_stdin
        os.environ.pop("SEQTOOL_DEBUG", None)
        if debug is not None:
            os.environ["SEQTOOL_DEBUG"] = debug
    return Result(code, out.getvalue(), err.getvalue())


def run_subprocess(*args: str | Path, home: Path) -> Result:
    """`python -m seqtool ARGS` in a fresh process (exit codes, no tracebacks)."""
    env = {**os.environ, "SEQTOOL_HOME": str(home), "NO_COLOR": "1"}
    env.pop("SEQTOOL_DEBUG", None)
    p = subprocess.run([sys.executable, "-m", "seqtool", *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=120, check=False)
    return Result(p.returncode, p.stdout, p.stderr)


def assert_user_error(res: Result, *words: str) -> None:
    """Exit code 2, exactly one `error:` line, a `hint:` line, no traceback."""
    assert res.code == 2, (res.code, res.out, res.err)
    assert "Traceback" not in res.err
    lines = res.err.strip().splitlines()
    assert len([ln for ln in lines if ln.startswith("error:")]) == 1, res.err
    assert any(ln.startswith("hint:") for ln in lines), res.err
    for w in words:
        assert w in res.err, f"{w!r} not in {res.err!r}"
