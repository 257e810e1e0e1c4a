"""Models fitted to data.

* Customer-base models of transaction logs, one registry, one interface
  (:mod:`sim.fitting.base`): BG/NBD (:mod:`sim.fitting.bgnbd`), Pareto/NBD
  (:mod:`sim.fitting.pnbd`) and Gamma-Gamma spend (:mod:`sim.fitting.ggamma`), fitted by
  maximum likelihood (:mod:`sim.fitting.mle`) and evaluated on a holdout period by
  :func:`fit_transactions` (:mod:`sim.fitting.evaluation`); the lifecycle stage HMM
  (:mod:`sim.fitting.lifecycle`, registry name ``lifecycle``).
* From a fitted lifecycle model to an experiment config and a snapshot of the live customers
  (:mod:`sim.fitting.bridge`, :func:`fitted_customer_base`): policy experiments on a real
  customer base.
* The simulator's calibration to observed survival (:mod:`sim.fitting.calibration`) or to a
  transaction log (:mod:`sim.fitting.cohort`), and synthetic logs simulated from a config
  (:mod:`sim.fitting.synthetic`).

May import: :mod:`sim.runs` and everything below it, :mod:`sim.analytic`, :mod:`sim.data`.
"""

from sim.fitting import bridge, calibration, cohort, synthetic
from sim.fitting.base import CustomerBaseModel, FittedModel, get_model, model_names, register_model
from sim.fitting.bridge import FittedCustomerBase, fitted_customer_base
from sim.fitting.evaluation import FitResult, fit_transactions

__all__ = [
    "fit_transactions",
    "FitResult",
    "CustomerBaseModel",
    "FittedModel",
    "get_model",
    "model_names",
    "register_model",
    "fitted_customer_base",
    "FittedCustomerBase",
    "bridge",
    "calibration",
    "cohort",
    "synthetic",
]
