"""Audits of the whole package's source: no pickle, eval or exec anywhere, and every file written
through the atomic writer (sim.io.results).
"""

import ast
from pathlib import Path

import numpy as np

import sim
from sim.model.sections import MAX_MAGNITUDE

SIM = Path(sim.__file__).resolve().parent
M = MAX_MAGNITUDE
TINY = 5e-324  # the smallest positive float64
INF = float("inf")

# Both builds of every equation: the numba-compiled one (scalars, as the kernels call it) and
# the plain Python body on NumPy arrays (as the vectorised reference calls it).
BUILDS = ["jit", "py_func"]


def _grid(*axes):
    """Every combination of the given values, as one flat float64 array per axis."""
    mesh = np.meshgrid(*[np.asarray(axis, dtype=float) for axis in axes], indexing="ij")
    return [m.ravel() for m in mesh]


def _evaluate(function, build, *arrays):
    """``function`` on every combination (one call per element for the jitted build, one
    vectorised call for ``.py_func``); NumPy may overflow to ±inf in an intermediate, but
    never perform an invalid operation (inf - inf, 0 * inf), which is what makes a NaN.
    """
    if build == "py_func":
        with np.errstate(invalid="raise", over="ignore", divide="ignore", under="ignore"):
            out = function.py_func(*arrays)
        return (
            tuple(np.asarray(o, dtype=float) for o in out)
            if isinstance(out, tuple)
            else np.asarray(out, dtype=float)
        )
    results = [function(*(float(a[i]) for a in arrays)) for i in range(len(arrays[0]))]
    if isinstance(results[0], tuple):
        return tuple(np.array(column, dtype=float) for column in zip(*results))
    return np.array(results, dtype=float)


# ----------------------------------------------------------------------------- package audits


def _package_modules():
    """Every module of the package, subpackages included (at least the 60 of the layout)."""
    modules = sorted(SIM.rglob("*.py"))
    assert len(modules) >= 60, modules
    return modules


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            owner = (
                func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            )
            yield node, owner, name


UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}


def test_no_pickle_eval_or_exec_in_the_package():
    """Inputs and outputs are TOML/JSON/CSV/parquet/npz only: no module of sim imports a
    pickle-like serialiser or calls eval/exec/compile, pandas' read_pickle/to_pickle, or
    np.load with allow_pickle=True (checked on the syntax tree, so docstrings don't count).
    """
    offences = []
    for path in _package_modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                offences += [
                    f"{path.name}:{node.lineno} import {a.name}"
                    for a in node.names
                    if a.name.split(".")[0] in UNSAFE_MODULES
                ]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
                offences.append(f"{path.name}:{node.lineno} from {node.module} import")
        for node, owner, name in _calls(tree):
            if isinstance(node.func, ast.Name) and name in {"eval", "exec", "compile"}:
                offences.append(f"{path.name}:{node.lineno} {name}()")
            if (
                isinstance(node.func, ast.Name)
                and name == "__import__"
                and not (node.args and isinstance(node.args[0], ast.Constant))
            ):
                offences.append(f"{path.name}:{node.lineno} __import__(<computed name>)")
            if name in {"read_pickle", "to_pickle"}:
                offences.append(f"{path.name}:{node.lineno} {name}()")
            if name == "load" and owner in {"np", "numpy"}:
                for keyword in node.keywords:
                    if keyword.arg == "allow_pickle" and not (
                        isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                    ):
                        offences.append(f"{path.name}:{node.lineno} np.load(allow_pickle=...)")
            if name == "load" and owner == "yaml":
                offences.append(f"{path.name}:{node.lineno} yaml.load")
    assert not offences, offences


def test_every_file_in_the_package_is_written_through_the_atomic_writer():
    """Only sim/io/results.py touches files for writing; every other module writes through
    atomic_write_bytes/atomic_write_text or save_result (temporary file + rename). Flags
    open(..., 'w'/'a'/'x'), Path.write_text/write_bytes, np.save*, DataFrame.to_csv/to_json/
    to_parquet with a target, and savefig to anything but an in-memory buffer.
    """
    offences = []
    for path in _package_modules():
        if path == SIM / "io" / "results.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, owner, name in _calls(tree):
            where = f"{path.name}:{node.lineno} {name}"
            if name == "open" and isinstance(node.func, ast.Name):
                modes = [a for a in node.args[1:2]] + [k.value for k in node.keywords if k.arg == "mode"]
                if any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes):
                    offences.append(where)
            elif name in {
                "write_text",
                "write_bytes",
                "savez",
                "savez_compressed",
                "savetxt",
                "to_parquet",
                "to_feather",
                "to_hdf",
                "to_excel",
            }:
                offences.append(where)
            elif name == "save" and owner in {"np", "numpy"}:
                offences.append(where)
            elif name in {"to_csv", "to_json"} and (
                node.args or any(k.arg in {"path_or_buf", "path"} for k in node.keywords)
            ):
                offences.append(where)
            elif name == "savefig" and node.args:
                target = node.args[0]
                in_memory = isinstance(target, ast.Name) and any(
                    word in target.id.lower() for word in ("buf", "stream")
                )
                if not in_memory:
                    offences.append(where)
    assert not offences, offences
