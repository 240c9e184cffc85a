"""The layer test: neatpipe's imports only point down, and no two packages import each other.

Every import of the package is read from the source (module level, inside functions, under
``TYPE_CHECKING``, and ``importlib.import_module("...")`` with a literal name; relative imports
resolved), each module is placed in a unit of :data:`LAYERS`, and three things are checked:

* no import points up the layers (same-layer imports and imports inside one unit are fine);
* the units import each other without a cycle;
* the modules import each other without a cycle (a function-level import that dodges one hides a
  design knot; imports under ``TYPE_CHECKING`` are annotations and do not count here).

``pytest -s tests/test_layers.py`` prints the unit-level import graph; every failure message has it too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "neatpipe"

#: Units of the package, bottom layer first, named without ``neatpipe.``; ``__init__`` is the package
#: root (the public API). A module belongs to the longest unit that prefixes its dotted name. A unit may
#: import the units of its own layer and of the layers below.
#: A package's ``cli.py`` is command-line wiring, at the top, but it wires its own package only: it may
#: import what its package may import, and the command-line helpers in ``cli``.
LAYERS: dict[str, tuple[str, ...]] = {
    "leaves": ("costs", "errors", "io", "lazy", "seeds", "vocab"),
    "sandbox and benchmarks": ("sandbox", "bench"),
    "models": ("models",),
    "genome": ("genome",),
    "runtime": ("runtime",),
    "engines (Ray)": ("distributed",),
    "evolution, analysis, experiments": ("evolution", "analysis", "experiment", "synthetic", "training"),
    "command line": (
        "__init__",
        "__main__",
        "cli",
        "perf",
        "sandbox.cli",
        "models.cli",
        "genome.cli",
        "evolution.cli",
        "evolution.evaluate_cli",
        "analysis.cli",
        "training.dataset_cli",
        "training.finetune_cli",
        "training.loop_cli",
    ),
}

#: Known imports that point up or close a cycle of modules (importing module -> imported module), each
#: with what removes it. The list can only shrink: the test fails when an entry no longer names an import
#: that points up or closes a cycle.
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted (``from m import name`` is ``m.name`` when that is a module)
    line: int
    typing_only: bool  # under ``if TYPE_CHECKING:``


def modules_of(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package (a package is its ``__init__``)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_import_module(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name == "import_module" and bool(call.args) and isinstance(call.args[0], ast.Constant)


def imports_of(module: str, path: Path, known: Iterable[str]) -> list[Import]:
    """Every import in one module, wherever it stands, with relative names resolved."""
    known = set(known)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    typing_nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            typing_nodes.update(id(n) for stmt in node.body for n in ast.walk(stmt))

    def resolve(name: str | None, level: int) -> str:
        if not level:
            return name or ""
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (level - 1)]
        return ".".join([*base, name] if name else base)

    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node.module, node.level)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        elif isinstance(node, ast.Call) and _is_import_module(node):
            name = node.args[0].value
            package = (
                node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else None
            )
            if isinstance(name, str):
                level = len(name) - len(name.lstrip("."))
                targets = [resolve(name[level:] or None, level) if level else name]
                if level and package:  # import_module(".x", "pkg") resolves against pkg
                    targets = [
                        ".".join([*package.split(".")[: len(package.split(".")) - (level - 1)], name[level:]])
                    ]
        for target in dict.fromkeys(targets):
            found.append(Import(module, target, node.lineno, id(node) in typing_nodes))
    return found


def package_imports(package_dir: Path = PACKAGE_DIR) -> list[Import]:
    """Every import between modules of the package (imports of other distributions are left out)."""
    modules = modules_of(package_dir)
    root = package_dir.name
    return [
        imp
        for module, path in modules.items()
        for imp in imports_of(module, path, modules)
        if imp.target == root or imp.target.startswith(root + ".")
    ]


def unit_of(module: str, root: str = "neatpipe") -> str | None:
    """The unit of :data:`LAYERS` that holds ``module``, or None when it has no place."""
    if module == root:
        return "__init__"
    name = module.removeprefix(root + ".")
    units = sorted((u for units in LAYERS.values() for u in units), key=len, reverse=True)
    return next((u for u in units if name == u or name.startswith(u + ".")), None)


def layer_of(unit: str) -> int:
    return next(i for i, units in enumerate(LAYERS.values()) if unit in units)


def points_up(source_unit: str, target_unit: str) -> bool:
    """Whether an import from one unit to another breaks the layering."""
    if source_unit == target_unit:
        return False
    if source_unit.endswith(".cli") and target_unit != "cli":
        ceiling = layer_of(source_unit.removesuffix(".cli"))
    else:
        ceiling = layer_of(source_unit)
    return layer_of(target_unit) > ceiling


def unit_graph(imports: Iterable[Import], *, with_allowed: bool = True) -> nx.DiGraph:
    """Units as nodes, an edge where a module of one imports a module of another; an edge that only
    :data:`ALLOWED` imports make is marked ``allowed`` (or left out, without ``with_allowed``)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(u for units in LAYERS.values() for u in units)
    for imp in imports:
        source, target = unit_of(imp.source), unit_of(imp.target)
        if not source or not target or source == target:
            continue
        allowed = (imp.source, imp.target) in ALLOWED
        if allowed and not with_allowed:
            continue
        graph.add_edge(
            source, target, allowed=allowed and graph.get_edge_data(source, target, {}).get("allowed", True)
        )
    return graph


def module_graph(imports: Iterable[Import], *, with_allowed: bool) -> nx.DiGraph:
    """Modules as nodes, an edge for each import that runs (``TYPE_CHECKING`` ones are annotations)."""
    graph = nx.DiGraph()
    graph.add_edges_from(
        (i.source, i.target)
        for i in imports
        if not i.typing_only
        and i.source != i.target
        and (with_allowed or (i.source, i.target) not in ALLOWED)
    )
    return graph


def graph_text(graph: nx.DiGraph) -> str:
    """The unit graph, layer by layer from the top: ``unit -> what it imports``."""
    lines = ["neatpipe import graph (unit -> units it imports; * only through ALLOWED), top layer first:"]
    for layer, units in reversed(LAYERS.items()):
        lines.append(f"  [{layer}]")
        for unit in units:
            targets = sorted(graph.successors(unit), key=lambda u: (-layer_of(u), u)) if unit in graph else []
            shown = [t + ("*" if graph.edges[unit, t]["allowed"] else "") for t in targets]
            lines.append(f"    {unit} -> {', '.join(shown) or '(nothing)'}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return package_imports()


@pytest.fixture(scope="module")
def graph_report(imports: list[Import]) -> str:
    text = graph_text(unit_graph(imports))
    print("\n" + text)
    return text


def test_every_module_has_a_place(imports: list[Import], graph_report: str) -> None:
    unplaced = sorted({m for m in modules_of(PACKAGE_DIR) if unit_of(m) is None})
    unplaced += sorted({i.target for i in imports if unit_of(i.target) is None} - set(unplaced))
    assert not unplaced, f"modules without a layer (add them to LAYERS): {unplaced}\n{graph_report}"


def test_no_import_points_up(imports: list[Import], graph_report: str) -> None:
    up = [
        f"{i.source}:{i.line} imports {i.target} ({unit_of(i.source)} -> {unit_of(i.target)})"
        for i in imports
        if points_up(unit_of(i.source) or "", unit_of(i.target) or "") and (i.source, i.target) not in ALLOWED
    ]
    assert not up, "imports that point up the layers:\n  " + "\n  ".join(up) + "\n" + graph_report


def test_allowed_exceptions_are_still_needed(imports: list[Import], graph_report: str) -> None:
    present = {(i.source, i.target) for i in imports}
    modules = module_graph(imports, with_allowed=True)
    stale = [
        f"{source} -> {target}"
        for source, target in ALLOWED
        if (source, target) not in present
        or not (
            points_up(unit_of(source) or "", unit_of(target) or "") or nx.has_path(modules, target, source)
        )
    ]
    assert not stale, (
        "ALLOWED names imports that no longer point up or close a cycle; remove them:\n  "
        + "\n  ".join(stale)
        + "\n"
        + graph_report
    )


def test_no_cycle_between_units(imports: list[Import], graph_report: str) -> None:
    cycles = sorted(
        " -> ".join([*c, c[0]]) for c in nx.simple_cycles(unit_graph(imports, with_allowed=False))
    )
    assert not cycles, "units that import each other:\n  " + "\n  ".join(cycles) + "\n" + graph_report


def test_no_cycle_between_modules(imports: list[Import], graph_report: str) -> None:
    graph = module_graph(imports, with_allowed=False)
    knots = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not knots, (
        "modules that import each other (directly or through others):\n  "
        + "\n  ".join(", ".join(k) for k in knots)
        + "\n"
        + graph_report
    )


def test_the_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Module level, in a function, relative, ``from package import module``, ``import_module`` with a
    literal, and ``TYPE_CHECKING`` imports are all found and resolved."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import mod\n")
    (pkg / "sub" / "mod.py").write_text(
        "from __future__ import annotations\n"
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "from ..low import thing\n"
        "if TYPE_CHECKING:\n"
        "    import pkg.top\n"
        "def f():\n"
        "    from pkg.sub import other\n"
        "    return importlib.import_module('pkg.dyn')\n"
    )
    for name in ("top", "dyn"):
        (pkg / f"{name}.py").write_text("")
    (pkg / "sub" / "other.py").write_text("")
    found = {(i.source, i.target, i.typing_only) for i in package_imports(pkg)}
    assert found == {
        ("pkg.sub", "pkg.sub.mod", False),
        ("pkg.sub.mod", "pkg.low", False),
        ("pkg.sub.mod", "pkg.top", True),
        ("pkg.sub.mod", "pkg.sub.other", False),
        ("pkg.sub.mod", "pkg.dyn", False),
    }


def test_layer_rules() -> None:
    """Down and sideways are fine, up is not; a package's cli.py may not reach above its package."""
    assert not points_up("runtime", "genome")
    assert not points_up("evolution", "analysis")
    assert points_up("genome", "runtime")
    assert points_up("errors", "sandbox")
    assert not points_up("genome.cli", "genome")
    assert not points_up("genome.cli", "cli")
    assert points_up("genome.cli", "evolution")
    assert not points_up("evolution.cli", "analysis")
    assert points_up("genome", "genome.cli")


@pytest.mark.parametrize(
    ("code", "heavy"),
    [
        (
            "import neatpipe",
            ("neatpipe.evolution", "neatpipe.genome", "neat", "torch", "yaml", "networkx", "ray"),
        ),
        (
            "from neatpipe.cli import build_parser; build_parser().format_help()",
            (
                "neatpipe.evolution.run",
                "neatpipe.genome.genome",
                "neat",
                "torch",
                "transformers",
                "networkx",
                "ray",
                "neatpipe.distributed.engine",
                "trl",
                "peft",
                "datasets",
            ),
        ),
    ],
)
def test_the_entry_points_load_only_what_they_need(code: str, heavy: tuple[str, ...]) -> None:
    """``import neatpipe`` and ``neatpipe --help`` load no package they do not use: each package names its
    exports lazily (neatpipe.lazy), so importing a package's ``cli`` does not import the package."""
    import subprocess
    import sys

    probe = f"import sys; {code}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.split() == []


def test_an_export_named_like_its_module_stays_the_export() -> None:
    """``neatpipe.bench.assemble`` is a function in the module ``assemble``: importing that module (as
    other modules do) must not put the module in the function's place."""
    import subprocess
    import sys

    probe = (
        "import neatpipe.bench.assemble, neatpipe.bench.extract\n"
        "from neatpipe.bench import assemble, extract_code\n"
        "print(callable(assemble), callable(extract_code))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]
