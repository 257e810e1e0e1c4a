"""Measured checks of the package itself: accuracy against closed forms (``sim validate``)
and speed (``sim bench``).

May import: :mod:`sim.experiments`, :mod:`sim.fitting` and everything below them.
"""
