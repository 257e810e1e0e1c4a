"""Models fitted to data: the simulator's calibration to observed survival or a transaction
log (:mod:`sim.fitting.calibration`), and synthetic logs simulated from a config
(:mod:`sim.fitting.synthetic`).

May import: :mod:`sim.runs` and everything below it, :mod:`sim.analytic`, :mod:`sim.data`.
"""

from sim.fitting import calibration, synthetic

__all__ = ["calibration", "synthetic"]
