"""Figures: ``plot_*(table, ..., ax=None) -> Axes`` functions on the tidy tables, the house
style, and the gallery of the field's figures built from versioned configs (``sim figures``).

May import: every subpackage but :mod:`sim.cli`.
"""
