"""Closed-form CLV models used to validate the simulator.

* Pfeifer & Carraway (2000) customer migration (Markov chain) model:
  :func:`markov_clv`, :func:`recency_chain`, :func:`prune_negative_states`
  (:mod:`sim.analytic.markov`).
* Gupta & Lehmann (2003, 2005) retention-based margin multiple: :func:`margin_multiple`
  (:mod:`sim.analytic.margin`).
* Fader & Hardie (2007, 2010) shifted-beta-geometric contractual retention model:
  :class:`SBGFit`, :func:`sbg_survival`, :func:`sbg_retention`,
  :func:`sbg_churn_probability`, :func:`sbg_fit`, :func:`sbg_del`, :func:`sbg_derl`
  (:mod:`sim.analytic.sbg`).
* Blattberg & Deighton (1996) customer-equity test: :func:`bd_response_rate`,
  :func:`bd_calibrate`, :func:`bd_customer_equity`, :func:`bd_optimal_spend`
  (:mod:`sim.analytic.customer_equity`).
* The lifecycle model's own Markov chain in the Markov-reducible setting (satisfaction
  feedback and tenure effects off): :func:`lifecycle_chain`, :func:`lifecycle_markov_clv`
  (:mod:`sim.analytic.lifecycle_chain`).

Conventions shared by every function: period ``t`` runs from time ``t`` to ``t + 1`` and "now"
is time 0; ``discount`` is a per-period discount *rate* ``d >= 0`` (factor ``1/(1 + d)``);
each docstring states when cash flows are received; invalid arguments raise ValueError
naming the argument, the value and what is allowed.

May import: :mod:`sim.model`, :mod:`sim.exceptions`.
"""

from sim.analytic.customer_equity import (
    BDOptimum,
    bd_calibrate,
    bd_customer_equity,
    bd_optimal_spend,
    bd_response_rate,
)
from sim.analytic.lifecycle_chain import (
    LIFECYCLE_STATES,
    lifecycle_chain,
    lifecycle_markov_clv,
    markov_reducible_problems,
)
from sim.analytic.margin import margin_multiple
from sim.analytic.markov import markov_clv, prune_negative_states, recency_chain
from sim.analytic.sbg import (
    SBGFit,
    sbg_churn_probability,
    sbg_del,
    sbg_derl,
    sbg_fisher_information,
    sbg_fit,
    sbg_retention,
    sbg_standard_errors,
    sbg_survival,
)

__all__ = [
    "markov_clv",
    "recency_chain",
    "prune_negative_states",
    "margin_multiple",
    "SBGFit",
    "sbg_survival",
    "sbg_retention",
    "sbg_churn_probability",
    "sbg_fit",
    "sbg_del",
    "sbg_derl",
    "sbg_fisher_information",
    "sbg_standard_errors",
    "BDOptimum",
    "bd_response_rate",
    "bd_calibrate",
    "bd_customer_equity",
    "bd_optimal_spend",
    "LIFECYCLE_STATES",
    "lifecycle_chain",
    "lifecycle_markov_clv",
    "markov_reducible_problems",
]
