"""The package's layout rules, checked from the source (see the docstring of :mod:`sim`).

* subpackages by concern, with dependencies pointing one way (:data:`LAYERS`);
* no import cycles between modules (every import statement counts, also inside functions);
* no argparse and no printing to the terminal outside :mod:`sim.cli`;
* no private name imported across subpackages;
* no module over :data:`MAX_LINES` lines;
* a curated top level.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sim

PACKAGE = Path(sim.__file__).resolve().parent

#: The subpackages from the bottom up: a module may import from its own subpackage and from
#: subpackages on a lower layer, never from one on its layer or above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("exceptions",),
    ("io",),
    ("model",),
    ("tables", "analytic", "data"),
    ("engines",),
    ("runs",),
    ("experiments", "fitting"),
    ("checks",),
    ("plotting",),
    ("cli",),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}

#: Longest module allowed ("files that fit in a head").
MAX_LINES = 800

#: The top level, as the README documents it.
TOP_LEVEL = [
    "__version__",
    "analytic",
    "data",
    "experiments",
    "fitting",
    "STAGES",
    "SEGMENTS",
    "PATTERNS",
    "ConfigError",
    "DataError",
    "ExperimentConfig",
    "load_config",
    "config_from_dict",
    "project",
    "ProjectionResult",
    "project_from",
    "simulate_market",
    "MarketResult",
    "run_experiment",
    "ExperimentResult",
    "project_to_precision",
    "run_sweep",
    "SweepResult",
    "optimize_spend",
    "OptimizationResult",
    "fit_transactions",
    "FitResult",
    "fitted_customer_base",
    "plot_stage_occupancy",
    "plot_clv_by_policy",
    "plot_clv_parts",
    "plot_patterns",
    "plot_satisfaction_retention",
    "plot_comparison_forest",
    "plot_frontier",
    "plot_response",
    "plot_sweep",
]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in ast.walk(node):
                if hasattr(child, "lineno"):
                    lines.add(child.lineno)
    return lines


def _imports(module: str) -> list[tuple[int, str, tuple[str, ...]]]:
    """``(line, imported module, names)`` for every import of a sim module in ``module``
    (``from a.b import c`` imports ``a.b.c`` when that is a module, else ``a.b``).
    """
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    skipped = _type_checking_lines(tree)
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "sim" or alias.name.startswith("sim."):
                    found.append((node.lineno, alias.name, ()))
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and (node.module == "sim" or node.module.startswith("sim."))
        ):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if target in MODULES:
                    found.append((node.lineno, target, ()))
                else:
                    found.append((node.lineno, node.module, (alias.name,)))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, "." * node.level + (node.module or ""), ()))
    return found


#: The package's entry points: ``sim/__init__.py`` assembles the top level from every layer,
#: ``sim/__main__.py`` runs the command line (``python -m sim``).
ENTRY_POINTS = ("sim", "sim.__main__")


def _library_modules() -> list[str]:
    """Every module but the package's entry points."""
    return [module for module in MODULES if module not in ENTRY_POINTS]


def test_every_subpackage_has_a_layer_and_a_docstring_saying_what_it_may_import():
    subpackages = sorted({_subpackage(module) for module in _library_modules() if _subpackage(module)})
    assert set(subpackages) <= set(RANK), sorted(set(subpackages) - set(RANK))
    for name in subpackages:
        path = PACKAGE / name / "__init__.py"
        if not path.exists():  # a single module (sim.exceptions)
            continue
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        assert docstring, f"sim.{name} has no docstring"
        if name != "cli":
            assert "May import" in docstring, f"sim.{name}'s docstring does not say what it may import"


def test_imports_are_absolute():
    relative = [
        f"{module}:{line} {target}"
        for module in _library_modules()
        for line, target, _ in _imports(module)
        if target.startswith(".")
    ]
    assert not relative


def test_dependencies_point_one_way():
    """A module imports from its own subpackage or from a lower layer only."""
    wrong = []
    for module in _library_modules():
        own = _subpackage(module)
        for line, target, _ in _imports(module):
            other = _subpackage(target)
            if target == "sim":
                wrong.append(f"{module}:{line} imports the top-level package")
            elif other != own and RANK[other] >= RANK[own]:
                wrong.append(
                    f"{module}:{line} imports {target} (sim.{own} is on layer {RANK[own]}, "
                    f"sim.{other} on layer {RANK[other]})"
                )
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_between_modules():
    graph = {
        module: {target for _, target, _ in _imports(module) if target in MODULES}
        for module in _library_modules()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module, path):
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target not in graph:
                continue
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_cycle_check_can_fail(tmp_path):
    """The depth-first search above finds a cycle when there is one (a two-module loop)."""
    graph = {"a": {"b"}, "b": {"a"}}
    state, cycles = {}, []

    def visit(module, path):
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(path + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    visit("a", ["a"])
    assert cycles == [["a", "b", "a"]]


def test_no_argparse_or_terminal_output_outside_the_cli():
    offenders = []
    for module, path in MODULES.items():
        if _subpackage(module) == "cli":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
                if "argparse" in names:
                    offenders.append(f"{module}:{node.lineno} imports argparse")
            elif isinstance(node, ast.Call):
                func = ast.unparse(node.func)
                if func == "print" or func in ("sys.stdout.write", "sys.stderr.write"):
                    offenders.append(f"{module}:{node.lineno} calls {func}")
    assert not offenders, "\n".join(offenders)


def test_no_private_name_is_imported_across_subpackages():
    offenders = []
    for module in _library_modules():
        own = _subpackage(module)
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        aliases = {}  # local name -> imported sim module
        for line, target, names in _imports(module):
            if _subpackage(target) == own:
                continue
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    offenders.append(f"{module}:{line} imports {target}.{name}")
            if target.rsplit(".", 1)[-1].startswith("_"):
                offenders.append(f"{module}:{line} imports the private module {target}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sim"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if full in MODULES and _subpackage(full) != own:
                        aliases[alias.asname or alias.name] = full
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                offenders.append(f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_fit_in_a_head(module):
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{module} has {lines} lines (at most {MAX_LINES})"


def test_the_top_level_is_the_curated_list():
    assert sim.__all__ == TOP_LEVEL
    for name in TOP_LEVEL:
        assert hasattr(sim, name), name
    public = {name for name in vars(sim) if not name.startswith("_")}
    # besides the curated names, only the subpackages imported on the way are attributes
    extra = {
        name for name in public - set(TOP_LEVEL) if not (PACKAGE / name).is_dir() and name != "exceptions"
    }
    assert not extra, sorted(extra)


def test_every_subpackage_all_resolves():
    import importlib

    for module in _library_modules():
        loaded = importlib.import_module(module)
        for name in getattr(loaded, "__all__", ()):
            assert hasattr(loaded, name), f"{module}.__all__ lists {name!r}, which it does not define"
