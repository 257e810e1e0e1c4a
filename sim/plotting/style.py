"""One matplotlib style for every figure of the project (``sim figures``, notebooks).

Use it as a context manager around the code that draws and saves a figure::

    from sim.plotting.style import figure_style
    with figure_style():
        figure, ax = plt.subplots()
        sim.plotting.plot_lorenz(table, ax=ax)
        figure.savefig("lorenz.png")

The style only sets ``matplotlib.rcParams`` inside the ``with`` block (through
:func:`matplotlib.rc_context`), so importing :mod:`sim` never changes a user's settings.
Colours: the lifecycle stages always use :data:`sim.plotting.projection.STAGE_COLORS` (one palette
for the stages everywhere); policies get the colour-blind-safe Okabe & Ito (2008) palette
in a fixed order, so the same policy has the same colour in every panel of a figure.

Saved files are reproducible: the SVG hash salt is fixed and the creation date is left out
of the PNG and SVG metadata (:data:`SAVE_METADATA`), so the same numbers give the same
bytes.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import matplotlib

__all__ = [
    "POLICY_PALETTE",
    "RC_PARAMS",
    "SAVE_METADATA",
    "figure_style",
    "policy_colors",
    "label_panels",
    "save_figure",
]

#: Okabe & Ito (2008) colour-blind-safe qualitative palette (black moved last), for policies.
POLICY_PALETTE = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)

#: The rcParams applied by :func:`figure_style`.
RC_PARAMS = {
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
    "figure.constrained_layout.use": True,
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.color": "#e0e0e0",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "axes.prop_cycle": matplotlib.cycler(color=list(POLICY_PALETTE)),
    "legend.frameon": False,
    "legend.fontsize": 8.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "lines.linewidth": 1.6,
    "lines.markersize": 4.0,
    "errorbar.capsize": 3.0,
    "svg.fonttype": "none",  # text stays text in SVG: small files, editable labels
    "svg.hashsalt": "sim-figures",  # fixed ids: the same figure gives the same SVG bytes
}

#: Metadata for :meth:`matplotlib.figure.Figure.savefig` by format: no creation date.
SAVE_METADATA = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}


@contextlib.contextmanager
def figure_style(**overrides) -> Iterator[None]:
    """Apply :data:`RC_PARAMS` (plus ``overrides``) to the figures drawn in the block.

    Parameters
    ----------
    **overrides
        rcParams to change on top of the project style, e.g.
        ``figure_style(**{"font.size": 11})``.
    """
    with matplotlib.rc_context({**RC_PARAMS, **overrides}):
        yield


def policy_colors(policies: Sequence[str]) -> dict[str, str]:
    """A colour per policy name, in the order given (cycling through :data:`POLICY_PALETTE`)."""
    return {
        policy: POLICY_PALETTE[index % len(POLICY_PALETTE)]
        for index, policy in enumerate(dict.fromkeys(policies))
    }


def label_panels(axes, letters: str = "abcdefgh") -> None:
    """Write a bold panel letter (a, b, …) at the top left, outside each of ``axes``."""
    for ax, letter in zip(axes, letters):
        ax.text(
            -0.02,
            1.02,
            letter,
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=12,
            fontweight="bold",
        )


def save_figure(figure, path, formats: Sequence[str] = ("png", "svg")) -> list:
    """Save ``figure`` as ``path`` with each suffix of ``formats``, in the project style
    (:data:`RC_PARAMS`: 200 dpi, tight bounding box, fixed SVG ids), atomically and
    without creation dates (:data:`SAVE_METADATA`). Returns the written paths.
    """
    import io
    from pathlib import Path

    from sim.io.results import atomic_write_bytes

    path = Path(path)
    written = []
    with figure_style():  # the save settings (dpi, tight box, SVG hash salt) are read at save time
        for fmt in formats:
            buffer = io.BytesIO()
            figure.savefig(buffer, format=fmt, metadata=SAVE_METADATA.get(fmt))
            written.append(atomic_write_bytes(path.with_suffix(f".{fmt}"), buffer.getvalue()))
    return written
