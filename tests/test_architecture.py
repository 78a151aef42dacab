"""Import rules, checked by parsing the source with ast: the layers and the
"never" edges of tests/architecture.toml (the table README.md shows: imports
point downward, every module in one layer, no import circle), click/rich live in
cli/ and console/ only, and heavy libraries are imported inside functions so
`seqtool --help` stays instant."""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "seqtool"
RULES = tomllib.loads((Path(__file__).parent / "architecture.toml").read_text("utf-8"))
HEAVY = ("torch", "datasets", "sacrebleu", "sentencepiece", "matplotlib")
LIGHT_MODULES = ["cli/*.py", "console/*.py", "errors.py", "config.py", "configfile.py",
                 "commands/*.py", "__init__.py", "version.py", "api.py"]
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


# --------------------------------------------------------------------------- layers
def matches(mod: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(mod, p) for p in patterns)


def layer_of(mod: str, layers: list[dict]) -> list[int]:
    """The layers that name `mod`; a module named exactly wins over a "pkg.*" pattern
    (seqtool.models.registry is core, the rest of seqtool.models.* is models)."""
    exact = [i for i, layer in enumerate(layers) if mod in layer["modules"]]
    return exact or [i for i, layer in enumerate(layers) if matches(mod, layer["modules"])]


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its body (functions too)."""
    files = {module_name(p): p for p in sources()}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        found = set()
        for m, _ in imports(path):
            parts = m.split(".")
            for k in range(len(parts), 0, -1):  # the longest prefix that is a module
                name = ".".join(parts[:k])
                if name in files:
                    if name != mod:
                        found.add(name)
                    break
        graph[mod] = found
    return graph


def layer_breaks(graph: dict[str, set[str]], rules: dict) -> list[str]:
    """Modules in no layer or in two, edges that point up, and "never" edges."""
    layers, bad = rules["layer"], []
    for mod in sorted(graph):
        where = layer_of(mod, layers)
        if len(where) != 1:
            bad.append(f"{mod} is in {len(where)} layers (tests/architecture.toml)")
    for mod, deps in sorted(graph.items()):
        here = layer_of(mod, layers)
        for dep in sorted(deps):
            there = layer_of(dep, layers)
            if here and there and there[0] > here[0]:
                bad.append(f"{mod} ({layers[here[0]]['name']}) imports {dep} "
                           f"({layers[there[0]]['name']}, a higher layer)")
            for rule in rules.get("never", []):
                if (matches(mod, rule["from"]) and matches(dep, rule["to"])
                        and not matches(mod, rule.get("except", []))):
                    bad.append(f"{mod} imports {dep}: never ({rule['why']})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_is_in_one_layer_and_imports_point_down():
    bad = layer_breaks(import_graph(), RULES)
    assert not bad, "\n".join(bad)


def test_no_import_circle_in_the_package():
    assert cycles(import_graph()) == []


def test_the_checker_finds_planted_breaks():
    """The rules can fail: an upward import, a command importing a command, a module
    in no layer, decoding importing a model, and a circle are all reported."""
    graph = {"seqtool.data.text": {"seqtool.training"},
             "seqtool.commands.a": {"seqtool.commands.b"}, "seqtool.commands.b": set(),
             "seqtool.newthing": set(), "seqtool.decoding": {"seqtool.models.lm"},
             "seqtool.models.lm": set(), "seqtool.training": set()}
    bad = "\n".join(layer_breaks(graph, RULES))
    assert "seqtool.data.text (data) imports seqtool.training (library" in bad
    assert "seqtool.commands.a imports seqtool.commands.b: never" in bad
    assert "seqtool.newthing is in 0 layers" in bad
    assert "seqtool.decoding imports seqtool.models.lm: never" in bad
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_readme_shows_the_layers_of_the_rules_file():
    """README.md's architecture table lists the layers of architecture.toml, in order,
    with their modules, so the picture a reader sees is the one the test checks."""
    readme = (PKG.parent / "README.md").read_text("utf-8")
    section = readme[readme.index("## Architecture"):]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert [r.split("|")[1].strip(" `") for r in rows] == [
        layer["name"] for layer in reversed(RULES["layer"])]
    for row, layer in zip(rows, reversed(RULES["layer"]), strict=False):
        assert all(f"`{m}`" in row for m in layer["modules"]), (layer["name"], row)


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
