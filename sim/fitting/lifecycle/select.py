"""Choosing the lifecycle HMM's specification on the calibration data.

:func:`select_lifecycle` fits every candidate ``(classes, rate heterogeneity, exit
heterogeneity)`` and keeps the best by a rule fixed in advance and the same for every log —
BIC on the calibration data by default. No holdout enters.
"""

from __future__ import annotations

import numpy as np

from sim.fitting.lifecycle.model import LifecycleHMM
from sim.fitting.lifecycle.params import group_sequences

__all__ = ["CANDIDATES", "DEFAULT_CANDIDATES", "select_lifecycle", "spec_name"]

#: Every specification :func:`select_lifecycle` knows: (classes, rate heterogeneity, exit
#: heterogeneity) with rate heterogeneity None or "gamma" and exit heterogeneity None, 2 or 3
#: support points, or "gamma".
CANDIDATES = tuple((C, rh, K) for C in (1, 2, 3) for rh in (None, "gamma") for K in (None, 2, 3, "gamma"))

#: The candidates of the registry model ``lifecycle``: one or two classes (the simulator's two
#: segments), with or without the gamma rate multiplier, and no, a two-point or a gamma exit
#: frailty. (Three classes and three-point frailties never came near the best BIC on CDNOW
#: and cost the most; they remain available through ``candidates``.)
DEFAULT_CANDIDATES = tuple((C, rh, K) for C in (1, 2) for rh in (None, "gamma") for K in (None, 2, "gamma"))


def spec_name(C, heterogeneity, exit_heterogeneity):
    """The short name of a specification, e.g. ``C1+rate+exitG``.

    Parameters
    ----------
    C : int
        Classes.
    heterogeneity : {"gamma", None}
        Rate multiplier.
    exit_heterogeneity : {"gamma", None} or int
        Exit frailty.

    Returns
    -------
    str
    """
    if exit_heterogeneity is None:
        exit_part = ""
    elif exit_heterogeneity == "gamma":
        exit_part = "+exitG"
    else:
        exit_part = f"+exit{int(exit_heterogeneity)}"
    return f"C{int(C)}" + ("+rate" if heterogeneity else "") + exit_part


def _nested(spec, other):
    """Whether ``other`` is ``spec`` with fewer random effects (same classes)."""
    (C, rh, eh), (C2, rh2, eh2) = spec, other
    return C == C2 and (rh2 is None or rh2 == rh) and (eh2 is None or eh2 == eh) and other != spec


def select_lifecycle(
    entry,
    counts,
    multiplicity=None,
    customer_sequence=None,
    candidates=CANDIDATES,
    criterion="bic",
    split=2 / 3,
    nested_starts=True,
    **kwargs,
):
    """Fit every candidate ``(n_classes, heterogeneity, exit_heterogeneity)``; keep the best.

    The rule uses the calibration data only and is the same for every log:

    * ``"bic"``: ``-2 LL + n_params log n`` (n = customers), lowest wins;
    * ``"aic"``: ``-2 LL + 2 n_params``;
    * ``"split"``: each candidate is also fitted on the first ``round(split * T)`` periods
      and scored by its predictive log-likelihood of the remaining calibration periods,
      ``log p(y_{T1..T-1} | y_{..T1-1})`` at the parameters of that fit; highest wins.

    Parameters
    ----------
    entry, counts, multiplicity, customer_sequence
        Distinct calibration sequences (see :meth:`LifecycleHMM.set_data`).
    candidates : sequence of tuples
        ``(n_classes, heterogeneity, exit_heterogeneity)``, fitted in this order.
    criterion : {"bic", "aic", "split"}
        The rule.
    split : float
        Share of the calibration periods of the first part for ``"split"``.
    nested_starts : bool, default True
        Also start each candidate from the optima of the candidates fitted before it that it
        nests (same classes, a subset of its random effects), so that a richer specification
        does not end below a simpler one for want of a start.
    **kwargs
        Passed to :class:`LifecycleHMM`.

    Returns
    -------
    best : LifecycleHMM
    table : list of dict
        One row per candidate: spec, n_classes, heterogeneity, exit_heterogeneity, loglik,
        n_params, bic, aic, n_at_best, n_final, n_nodes, n_exit_nodes, seconds (and
        split_loglik with ``"split"``); fitted models in ``row["model"]``.
    """
    if criterion not in ("bic", "aic", "split"):
        raise ValueError("criterion must be 'bic', 'aic' or 'split'")
    if not candidates:
        raise ValueError("candidates is empty")
    entry = np.asarray(entry)
    counts = np.asarray(counts)
    T = counts.shape[1]
    T1 = int(round(split * T))
    if criterion == "split" and not 1 <= T1 < T:
        raise ValueError(f"split = {split}: the first part must have between 1 and {T - 1} periods")
    fits, table = {}, []
    for spec in candidates:
        C, rh, eh = spec
        m = LifecycleHMM(n_classes=C, heterogeneity=rh, exit_heterogeneity=eh, **kwargs)
        starts = [f.params_ for s, f in fits.items() if nested_starts and _nested(spec, s)]
        m.fit(entry, counts, multiplicity, customer_sequence, start=starts or None)
        row = dict(
            spec=m.name,
            n_classes=C,
            heterogeneity=rh,
            exit_heterogeneity=eh,
            loglik=m.loglik_,
            n_params=m.n_params_,
            bic=m.bic_,
            aic=m.aic_,
            n_at_best=m.n_at_best_,
            n_final=int(sum(np.isfinite(r.loglik) for r in m.starts_)),
            n_nodes=m.n_nodes,
            n_exit_nodes=m.n_exit_nodes,
            seconds=m.fit_seconds_,
            model=m,
        )
        if criterion == "split":
            row["split_loglik"] = _split_loglik(m, entry, counts, multiplicity, T1, kwargs)
            m.split_loglik_ = row["split_loglik"]
        fits[tuple(spec)] = m
        table.append(row)
    models = list(fits.values())
    if criterion == "split":
        best = max(models, key=lambda m: m.split_loglik_)
    else:
        best = min(models, key=lambda m: getattr(m, criterion + "_"))
    return best, table


def _split_loglik(model, entry, counts, multiplicity, T1, kwargs):
    """Predictive log-likelihood of periods T1..T-1 given periods ..T1-1, at the parameters
    fitted on periods ..T1-1 (same specification and settings as ``model``).
    """
    weight = np.ones(len(entry)) if multiplicity is None else np.asarray(multiplicity, float)
    keep = entry < T1
    e1, c1, _, inverse = group_sequences(entry[keep], counts[keep, :T1])
    m1 = np.bincount(inverse, weights=weight[keep], minlength=len(e1))
    first = LifecycleHMM(
        n_classes=model.n_classes,
        heterogeneity=model.heterogeneity,
        exit_heterogeneity=model.exit_heterogeneity,
        **kwargs,
    )
    first.fit(e1, c1, m1)
    p = first.params_
    ll_first = first.loglik(p)
    full = LifecycleHMM(
        n_classes=model.n_classes,
        heterogeneity=model.heterogeneity,
        exit_heterogeneity=model.exit_heterogeneity,
        n_nodes=max(first.n_nodes, 2),
        n_exit_nodes=max(first.n_exit_nodes, 2),
    )
    full.set_data(entry, counts, weight)
    return float(full.loglik(p) - ll_first)
