r"""The field's figures, regenerated with one command: ``sim figures [--quick] [--only NAME]``.

Every figure is described by a versioned TOML file in ``experiments/figures/`` (one per
figure; :mod:`sim.plotting.gallery.spec`), built and drawn by its kind
(:mod:`sim.plotting.gallery.kinds`, :mod:`sim.plotting.gallery.builders`) and written with
its data, caption and index by :func:`make_figures` (:mod:`sim.plotting.gallery.make`).
"""

from sim.plotting.gallery.kinds import (
    FIGURE_KINDS,
    draw_figure,
    figure_caption,
    figure_data,
    load_figure_spec,
    load_figure_specs,
)
from sim.plotting.gallery.make import FigureRecord, make_figures
from sim.plotting.gallery.spec import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_OUT,
    DEFAULT_QUICK_OUT,
    FigureData,
    FigureSpec,
)
from sim.plotting.gallery.tables import (
    lorenz_table,
    loyalty_curve_table,
    response_config,
    survival_validation_table,
    tenure_stage_table,
)

__all__ = [
    "FIGURE_KINDS",
    "DEFAULT_CONFIG_DIR",
    "DEFAULT_OUT",
    "DEFAULT_QUICK_OUT",
    "FigureSpec",
    "FigureData",
    "FigureRecord",
    "load_figure_spec",
    "load_figure_specs",
    "figure_data",
    "figure_caption",
    "draw_figure",
    "make_figures",
    "tenure_stage_table",
    "loyalty_curve_table",
    "lorenz_table",
    "response_config",
    "survival_validation_table",
]
