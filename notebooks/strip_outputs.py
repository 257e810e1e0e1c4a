"""Clear outputs, execution counts and widget state from the notebooks before committing.

Usage: ``python notebooks/strip_outputs.py [NOTEBOOK ...]`` (default: every ``*.ipynb`` here).
``tests/test_notebooks.py`` fails on a committed notebook with outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat


def strip(path: Path) -> bool:
    """Clear ``path`` in place; returns whether anything changed."""
    notebook = nbformat.read(path, as_version=4)
    changed = notebook.metadata.pop("widgets", None) is not None
    for cell in notebook.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count, changed = [], None, True
    if changed:
        nbformat.write(notebook, path)
    return changed


if __name__ == "__main__":
    paths = [Path(arg) for arg in sys.argv[1:]] or sorted(Path(__file__).parent.glob("*.ipynb"))
    for path in paths:
        print(f"{path}: {'stripped' if strip(path) else 'clean'}")
