"""Import rules from STYLE.md section 1, checked by parsing the source with ast:
imports point downward, click/rich live in cli/ and console/ only, and heavy
libraries are imported inside functions so `seqtool --help` stays instant."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "seqtool"
HEAVY = ("torch", "datasets", "sacrebleu", "sentencepiece", "matplotlib")
LIGHT_MODULES = ["cli/*.py", "console/*.py", "errors.py", "config.py", "configfile.py",
                 "commands/*.py"]
CLI = PKG / "cli"


def rel(path: Path) -> str:
    return path.relative_to(PKG.parent).as_posix()


def sources() -> list[Path]:
    files = sorted(PKG.rglob("*.py"))
    assert len(files) > 15
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in `path`.

    top_level_only: skip imports inside functions (module body, if/try blocks and
    class bodies count as top level; `if TYPE_CHECKING:` blocks do not run)."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    pkg = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    out: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if top_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                     ast.Lambda)):
                continue
            if (top_level_only and isinstance(child, ast.If)
                    and "TYPE_CHECKING" in ast.unparse(child.test)):
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative import
                    base = pkg.split(".")
                    base = base[: len(base) - child.level + 1]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                out.append((mod, child.lineno))
                out.extend((f"{mod}.{a.name}", child.lineno) for a in child.names)
            visit(child)

    visit(tree)
    return out


def is_module(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_imports_parse_relative_and_nested():
    """The checker itself: nested imports are seen, and skipped with top_level_only."""
    cli = imports(CLI / "lm.py")
    assert any(is_module(m, "seqtool.commands") for m, _ in cli)
    assert any(m == "click" for m, _ in imports(CLI / "lm.py", top_level_only=True))
    assert not any(is_module(m, "seqtool.commands")
                   for m, _ in imports(CLI / "lm.py", top_level_only=True))


def test_nothing_imports_cli():
    outside = [p for p in sources() if p.parent != CLI and p != PKG / "__main__.py"]
    bad = [f"{rel(p)}:{line}" for p in outside
           for m, line in imports(p) if is_module(m, "seqtool.cli")]
    assert not bad, f"seqtool.cli imported by {bad}"


def test_click_and_rich_only_in_cli_and_console():
    allowed = {*(PKG / "console").glob("*.py"), *CLI.glob("*.py")}
    bad = [f"{rel(p)}:{line} {m}" for p in sources() if p not in allowed
           for m, line in imports(p) if is_module(m, "click") or is_module(m, "rich")]
    assert not bad, bad


@pytest.mark.parametrize("pattern", LIGHT_MODULES)
def test_no_heavy_imports_at_top_level(pattern):
    files = sorted(PKG.glob(pattern))
    assert files, pattern
    bad = [f"{rel(p)}:{line} {m}" for p in files
           for m, line in imports(p, top_level_only=True)
           if any(is_module(m, h) for h in HEAVY)]
    assert not bad, f"import these inside the functions that need them: {bad}"


def test_light_modules_stay_light_through_their_seqtool_imports():
    """Follow top-level imports between seqtool modules (e.g. commands/corpus.py ->
    data/corpora.py): no module reached from a light one imports a heavy library at
    top level."""
    files = {module_name(p): p for p in sources()}

    def deps(mod: str) -> set[str]:
        found = set()
        for m, _ in imports(files[mod], top_level_only=True):
            parts = m.split(".")
            for k in range(1, len(parts) + 1):  # the module and the packages above it
                if ".".join(parts[:k]) in files:
                    found.add(".".join(parts[:k]))
        return found

    bad = []
    for pat in LIGHT_MODULES:
        for p in PKG.glob(pat):
            seen, todo = set(), [module_name(p)]
            while todo:
                mod = todo.pop()
                if mod in seen:
                    continue
                seen.add(mod)
                todo.extend(deps(mod))
            for mod in sorted(seen):
                bad += [f"{rel(p)} -> {rel(files[mod])}:{line} {m}"
                        for m, line in imports(files[mod], top_level_only=True)
                        if any(is_module(m, h) for h in HEAVY)]
    assert not bad, bad


@pytest.mark.parametrize("layer", ["layers", "models", "data"])
def test_lower_layers_do_not_import_upper_ones(layer):
    upper = ("seqtool.commands", "seqtool.training", "seqtool.cli", "seqtool.console",
             "seqtool.decoding")
    bad = [f"{rel(p)}:{line} {m}" for p in sorted((PKG / layer).rglob("*.py"))
           for m, line in imports(p) if any(is_module(m, u) for u in upper)]
    assert not bad, bad


def test_library_code_does_not_print():
    """Library layers return results or emit events; only cli/ and console.py write output."""
    bad = []
    for p in sources():
        if p.parent in (CLI, PKG / "console") or p == PKG / "__main__.py":
            continue
        for node in ast.walk(ast.parse(p.read_text("utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "print"):
                bad.append(f"{rel(p)}:{node.lineno}")
    assert not bad, bad


def test_no_pickle_or_torch_load():
    bad = []
    for p in sources():
        for m, line in imports(p):
            if is_module(m, "pickle") or is_module(m, "dill"):
                bad.append(f"{rel(p)}:{line} {m}")
        for node in ast.walk(ast.parse(p.read_text("utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr in ("load", "save")
                    and isinstance(node.value, ast.Name) and node.value.id == "torch"):
                bad.append(f"{rel(p)}:{node.lineno} torch.{node.attr}")
    assert not bad, bad


def test_importing_the_cli_does_not_import_heavy_libraries():
    code = ("import sys, seqtool.cli, seqtool.console, seqtool.config; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=PKG.parent)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]", f"imported at startup: {p.stdout.strip()}"
