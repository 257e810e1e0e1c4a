"""Models fitted to data: customer-base models of transaction logs and the simulator's calibration."""

from sim.fitting import calibration
