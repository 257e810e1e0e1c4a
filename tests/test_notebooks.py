"""The notebooks in ``notebooks/`` run in CI (with small sizes) and are committed without outputs.

Each notebook takes its sizes from one cell tagged ``parameters``; like papermill, the test
inserts a cell right after it that sets small sizes, then executes the notebook with nbclient
on a kernel that runs this very interpreter (a kernelspec written to a temporary folder, so no
``python -m ipykernel install`` is needed). A notebook passes when no cell raises (the
notebooks hold their own checks, e.g. that the CLV parts add up and that the sBG fit
reproduces the published values) and every notebook draws at least one figure.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
KERNEL_NAME = "sim-test-python3"
#: Matplotlib's backend for notebooks: figures become image/png outputs of their cells.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

#: Small sizes injected after each notebook's parameters cell.
SMALL = {
    "01_quickstart": "CUSTOMERS = 2_000\nREPLICATIONS = 1\nHORIZON = 60",
    "02_policy_comparison": (
        "CUSTOMERS = 1_500\nREPLICATIONS = 1\nHORIZON = 48\nFORMATION_SPENDS = [0.0, 4.0, 8.0]"
    ),
    "03_reproduce_figures": 'QUICK = True\nONLY = ["lifecycle_patterns", "validation"]',
    "04_calibration": "CUSTOMERS = 20_000\nREPLICATIONS = 1",
    "05_real_customer_base": (
        'LIFECYCLE_CANDIDATES = [(1, "gamma", None)]\nREPLICATIONS = 1\nSNAPSHOT_DRAWS = 8\nHORIZON = 52'
    ),
}


def test_the_five_notebooks_are_there():
    assert [path.stem for path in NOTEBOOKS][:5] == list(SMALL)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_notebooks_have_no_outputs(path):
    """Outputs stay out of git: no outputs, no execution counts, no widget state."""
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {index} has outputs (clear them before committing)"
            assert cell.execution_count is None, f"{path.name}: cell {index} has an execution count"
    assert "widgets" not in notebook.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_has_one_parameters_cell_and_imports_sim(path):
    notebook = nbformat.read(path, as_version=4)
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'"
    assert tagged[0].cell_type == "code"
    assert any("import sim" in cell.source for cell in notebook.cells if cell.cell_type == "code")


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """A kernelspec for the running interpreter, found through ``JUPYTER_PATH``."""
    folder = tmp_path_factory.mktemp("jupyter")
    spec = folder / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "sim tests (this interpreter)",
                "language": "python",
                # the kernel draws inline whatever the caller's MPLBACKEND (Agg would draw nothing)
                "env": {"MPLBACKEND": INLINE_BACKEND},
            }
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        old = os.environ.get("JUPYTER_PATH")
        patch.setenv("JUPYTER_PATH", str(folder) + (os.pathsep + old if old else ""))
        yield KERNEL_NAME


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_executes_with_small_sizes(path, kernel_name):
    notebook = nbformat.read(path, as_version=4)
    position = next(
        index for index, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])
    )
    injected = nbformat.v4.new_code_cell(SMALL.get(path.stem, "# no small sizes defined"))
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(position + 1, injected)
    client = nbclient.NotebookClient(
        notebook, kernel_name=kernel_name, timeout=600, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, if a cell fails
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.get("output_type") == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert images, f"{path.name} drew no figure"


def test_the_kernel_draws_inline_whatever_the_callers_backend(kernel_name, monkeypatch):
    """A caller with MPLBACKEND=Agg in the environment (a common CI or headless setting) still
    gets figures: the kernelspec sets the inline backend for the kernel process.
    """
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import os, matplotlib\nprint(os.environ['MPLBACKEND'])"),
            nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0]);"),
        ]
    )
    nbclient.NotebookClient(notebook, kernel_name=kernel_name, timeout=120).execute()
    assert notebook.cells[0].outputs[0]["text"].strip() == INLINE_BACKEND
    assert any("image/png" in output.get("data", {}) for output in notebook.cells[1].outputs)


def test_strip_outputs_clears_what_the_no_outputs_test_refuses(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("strip_outputs", REPO / "notebooks" / "strip_outputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cell = nbformat.v4.new_code_cell("1 + 1")
    cell.execution_count = 3
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# x"), cell])
    notebook.metadata["widgets"] = {"state": {}}
    path = tmp_path / "dirty.ipynb"
    nbformat.write(notebook, path)
    assert module.strip(path) is True
    cleaned = nbformat.read(path, as_version=4)
    assert cleaned.cells[1].outputs == [] and cleaned.cells[1].execution_count is None
    assert "widgets" not in cleaned.metadata and cleaned.cells[1].source == "1 + 1"
    assert module.strip(path) is False  # idempotent
