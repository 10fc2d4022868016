"""The package's architecture, checked on its import graph.

seqlab has four layers, visible in its folders:

- ``seqlab/base/``: device and seeding, data, the training loop, metrics,
  decoding, plots, checkpoints, the explorers' base, the book's helpers;
- idea modules, ``seqlab/<idea>.py`` (and ``seqlab/grading.py``, the checks the
  graded notebooks run), which may import ``base`` and other idea modules;
- chapter modules, ``seqlab/chapters/<id>.py``, which may import all of the above
  and the chapters before them;
- the instructor's kit, ``seqlab/kit/``, which nothing else imports.

Nothing imports upward, no private name crosses a module, imports sit at the
top of a module (a function-level import only for an optional heavy
dependency, with a comment saying so), and a module stays short enough to read
in one sitting.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from seqlab.chapters import CHAPTERS

pytestmark = pytest.mark.base

PACKAGE = Path(__file__).resolve().parents[2] / "seqlab"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(name: str) -> tuple[int, int]:
    """(layer, rank within the layer): base 0, ideas 1, chapters 2 (ranked by
    chapter order), kit 3. The package's own __init__ sits with the base."""
    parts = name.split(".")
    if name == "seqlab" or parts[1] == "base":
        return (0, 0)
    if parts[1] == "chapters":
        if len(parts) == 2 or parts[2] == "__main__":
            return (2, len(CHAPTERS))  # the chapters' command line sees every chapter
        return (2, CHAPTERS.index(parts[2]))
    if parts[1] == "kit":
        return (3, 0)
    return (1, 0)


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str) -> list[tuple[ast.AST, str, list[str], bool]]:
    """(node, imported module, names, at the module's top level) for every import."""
    tree = ast.parse(MODULES[module].read_text())
    top = set(map(id, tree.body))
    for node in tree.body:  # imports under a top-level if/try still count as top level
        if isinstance(node, (ast.If, ast.Try)):
            top |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((node, alias.name, [], id(node) in top))
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            names = [a.name for a in node.names]
            # "from seqlab.base import plots" imports the module seqlab.base.plots
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if submodules:
                for sub in submodules:
                    out.append((node, sub, [], id(node) in top))
            else:
                out.append((node, target, names, id(node) in top))
    return out


def seqlab_imports(module: str) -> list[tuple[ast.AST, str, list[str], bool]]:
    return [i for i in imports(module) if i[1] == "seqlab" or i[1].startswith("seqlab.")]


def test_the_layers_are_folders_and_every_module_finds_its_layer():
    assert (PACKAGE / "base").is_dir() and (PACKAGE / "chapters").is_dir()
    assert (PACKAGE / "kit").is_dir()
    chapters = {n.split(".")[2] for n in MODULES if n.startswith("seqlab.chapters.")}
    assert set(CHAPTERS) <= chapters, f"chapters without a module: {set(CHAPTERS) - chapters}"
    for name in MODULES:
        layer(name)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_nothing_imports_upward(module):
    mine = layer(module)
    for node, target, _, _ in seqlab_imports(module):
        if target not in MODULES:
            continue
        theirs = layer(target)
        if mine[0] == 3:
            continue  # the kit may use everything below it
        assert theirs[0] != 3, f"{module}:{node.lineno} imports the instructor's kit ({target})"
        assert theirs <= mine, (
            f"{module}:{node.lineno} imports {target}, which sits above it "
            f"(layers base 0 < ideas 1 < chapters 2 < kit 3)"
        )


def test_the_import_graph_has_no_cycle():
    graph = {m: {t for _, t, _, _ in seqlab_imports(m) if t in MODULES and t != m} for m in MODULES}
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m) :] + [m]))
        if m in done:
            return
        for t in sorted(graph[m]):
            if t != "seqlab" and not m.startswith(t + "."):  # a package's own __init__
                visit(t, path + [m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_crosses_a_module(module):
    for node, target, names, _ in seqlab_imports(module):
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{module}:{node.lineno} imports private {private} from {target}"
    tree = ast.parse(MODULES[module].read_text())
    aliases = {
        (a.asname or a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
        if isinstance(n, ast.ImportFrom) and _resolve(module, n).startswith("seqlab")
        or isinstance(n, ast.Import) and a.name.startswith("seqlab")
    }
    for n in ast.walk(tree):
        if (
            isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name)
            and n.value.id in aliases
            and n.attr.startswith("_")
            and not n.attr.startswith("__")
        ):
            raise AssertionError(f"{module}:{n.lineno} reaches {n.value.id}.{n.attr}")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_sit_at_the_top_unless_optional_and_explained(module):
    source = MODULES[module].read_text().splitlines()
    for node, target, _, top in imports(module):
        if top:
            continue
        if module == "seqlab" and target == "seqlab.base.env":
            continue  # seqlab.device/seed on first use (PEP 562): `import seqlab` loads no torch
        assert not target.startswith("seqlab"), (
            f"{module}:{node.lineno} imports {target} inside a function: import it at the top"
        )
        around = source[node.lineno - 2] + source[node.lineno - 1]
        assert "#" in around, (
            f"{module}:{node.lineno} imports {target} inside a function without a comment "
            "saying why (only optional heavy dependencies belong there)"
        )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_reads_in_one_sitting(module):
    n = len(MODULES[module].read_text().splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines (at most {MAX_LINES})"


def test_the_checks_students_import_need_no_course_kit():
    for module in ("seqlab.grading", *(n for n in MODULES if n.split(".")[1:2] == ["base"])):
        for node, target, _, _ in seqlab_imports(module):
            assert not target.startswith("seqlab.kit"), f"{module}:{node.lineno} -> {target}"
