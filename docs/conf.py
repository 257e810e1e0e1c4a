"""Sphinx configuration of the ``sim`` documentation site.

Build (warnings are errors; needs the ``docs`` extra, no network)::

    python -m sphinx -W -b html docs docs/_build/html

The pages: ``index.md``, the model specification (``model.md``, ``sources.md``), the API
reference (``api.rst``, whose autosummary stubs are generated into ``docs/generated/``, not
committed), the notebooks of ``notebooks/`` rendered from their committed, output-free
sources (``docs/notebooks/`` holds symbolic links to them; they are not executed here, the
test suite runs them), and the figure gallery (``figures.md``, whose entries are generated
at build time from ``results/figures/*.png`` and their ``*.txt`` captions).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the package from this checkout, installed or not

import sim  # noqa: E402

# -- Project ------------------------------------------------------------------------------

project = "sim"
author = "the sim authors"
copyright = "the sim authors"
release = sim.__version__
version = ".".join(release.split(".")[:2])

# -- Extensions ---------------------------------------------------------------------------

extensions = [
    "myst_nb",  # Markdown pages (MyST) and notebooks; brings myst_parser with it
    "numpydoc",  # numpydoc-style docstrings
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

# Intersphinx (links to python, numpy, pandas, scipy) only from local inventories: the build
# must not need the network. Put ``<name>-objects.inv`` files in ``docs/_inventories/`` to turn
# it on; without them the extension stays off and such names render as plain code.
_INVENTORIES = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "pandas": "https://pandas.pydata.org/docs/",
    "scipy": "https://docs.scipy.org/doc/scipy/",
}
intersphinx_mapping = {
    name: (url, str(DOCS / "_inventories" / f"{name}-objects.inv"))
    for name, url in _INVENTORIES.items()
    if (DOCS / "_inventories" / f"{name}-objects.inv").is_file()
}
if intersphinx_mapping:
    extensions.append("sphinx.ext.intersphinx")

templates_path = ["_templates"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "_inventories"]
nitpicky = False

# -- MyST and MyST-NB ---------------------------------------------------------------------

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
nb_execution_mode = "off"  # rendered from the committed sources; tests/test_notebooks.py runs them
nb_merge_streams = True

# -- API reference: autodoc, autosummary, numpydoc ----------------------------------------

autosummary_generate = True
autosummary_imported_members = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
numpydoc_show_class_members = False  # class pages list their members through autodoc instead
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False


def _imported_from(modname: str, name: str) -> str | None:
    """The module that ``modname`` imports ``name`` from (``from X import name``), if any."""
    import ast
    import importlib

    try:
        source = Path(importlib.import_module(modname).__file__).read_text(encoding="utf-8")
    except (ImportError, TypeError, OSError):
        return None
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if any(alias.name == name and alias.asname in (None, name) for alias in node.names):
                return node.module
    return None


def _data_docstring(app, what, name, obj, options, lines):
    """Data without a ``#:`` comment of its own: take the comment where it is defined.

    A constant re-exported by a package (``sim.STAGES`` from ``sim.model.names``) has its
    doc comment in the defining module only; without this, autodoc would show the docstring
    of the value's type ("Built-in immutable sequence.").
    """
    if what not in ("data", "attribute") or "." not in name:
        return
    type_doc = getattr(type(obj), "__doc__", None)
    type_doc = type_doc if isinstance(type_doc, str) else None
    if lines and (not type_doc or "\n".join(lines).strip() != type_doc.strip()):
        return  # a docstring of its own
    from sphinx.pycode import ModuleAnalyzer, PycodeError

    modname, attr = name.rsplit(".", 1)
    for _ in range(3):  # follow at most three re-exports
        modname = _imported_from(modname, attr)
        if modname is None:
            break
        try:
            comment = ModuleAnalyzer.for_module(modname).find_attr_docs().get(("", attr))
        except PycodeError:
            break
        if comment:
            lines[:] = [line for line in comment if line is not None]
            return
    if lines and type_doc and "\n".join(lines).strip() == type_doc.strip():
        lines.clear()  # never the docstring of ``tuple`` or ``int`` as if it described the name


# -- HTML ---------------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"sim {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
html_copy_source = False
# No left sidebar on pages without sub-pages, and none in the API section, whose navigation
# would list every generated page (hundreds) on each of them: it navigates through the API
# reference's own table of contents instead.
html_sidebars = {page: [] for page in ("index", "model", "sources", "figures", "api", "generated/*")}
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc"],
}

# -- The figure gallery -------------------------------------------------------------------

FIGURES = ROOT / "results" / "figures"
#: The line of ``figures.md`` replaced by the generated entries.
FIGURES_MARKER = "<!-- figure entries: generated by docs/conf.py -->"
_CAPTION_TITLE = re.compile(r"Figure (\d+)\.\s+(.+)")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>$|#])")


def _escape(text: str) -> str:
    """Markdown text that renders as ``text`` (no emphasis, math or links by accident)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def figure_entries(folder: Path = FIGURES) -> tuple[str, list[Path]]:
    """The gallery's entries, in figure order, as MyST Markdown, and the files they read.

    Every ``<name>.png`` of ``folder`` needs its caption ``<name>.txt``: the title line
    ``Figure N. Title``, a blank line, then the caption.
    """
    entries, used = [], []
    for png in sorted(folder.glob("*.png")):
        txt = png.with_suffix(".txt")
        if not txt.is_file():
            raise FileNotFoundError(f"{png} has no caption file {txt.name}")
        title_line, _, caption = txt.read_text(encoding="utf-8").strip().partition("\n")
        match = _CAPTION_TITLE.fullmatch(title_line.strip())
        if match is None:
            raise ValueError(f"{txt}: first line {title_line!r} is not 'Figure N. Title'")
        number, title = int(match[1]), match[2].strip()
        relative = f"../results/figures/{png.name}"
        csv = png.with_suffix(".csv")
        data = (
            f" Data drawn: {{download}}`{csv.name} <../results/figures/{csv.name}>`." if csv.is_file() else ""
        )
        caption = " ".join(caption.split())
        entries.append(
            (
                number,
                f"(figure-{png.stem})=\n"
                f"## {number}. {_escape(title)}\n\n"
                f":::{{figure}} {relative}\n:alt: {title}\n:width: 100%\n\n{_escape(caption)}\n:::\n\n"
                f"Regenerate: `sim figures --only {png.stem}` (config "
                f"`experiments/figures/{png.stem}.toml`).{data}\n",
            )
        )
        used += [png, txt] + ([csv] if csv.is_file() else [])
    numbers = [number for number, _ in entries]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"{folder}: figure numbers repeat: {sorted(numbers)}")
    return "\n".join(text for _, text in sorted(entries)), used


def _fill_figures(app, docname: str, source: list[str]) -> None:
    if docname != "figures":
        return
    if FIGURES_MARKER not in source[0]:
        raise ValueError(f"figures.md lost its marker line {FIGURES_MARKER!r}")
    text, used = figure_entries()
    for path in used:
        app.env.note_dependency(str(path))
    source[0] = source[0].replace(FIGURES_MARKER, text)


def setup(app):
    """Generate the gallery's entries when ``figures.md`` is read; document re-exported data."""
    app.connect("source-read", _fill_figures)
    app.connect("autodoc-process-docstring", _data_docstring, priority=400)
