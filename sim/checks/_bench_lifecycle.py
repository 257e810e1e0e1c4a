"""The lifecycle HMM's part of ``sim bench --fit`` (``run_fit_benchmark(..., lifecycle=True)``).

Cohorts simulated from the lifecycle HMM's costliest candidate specification, one class with a
gamma rate multiplier and a gamma exit frailty, at its estimates on the CDNOW sample
(:data:`LIFECYCLE_PARAMETERS`; BIC prefers the same model without the exit frailty there, by
0.5): a CDNOW-sized one (23,570 customers × 78 weeks) and one of
10^6 customers. Timed: simulation, grouping into distinct sequences, one EM iteration
(E-step and M-step; median over repeats, 1 thread and all threads, at the starting and the
final quadrature node counts) and the whole fit with its starts and the node rule. Targets
reported against (not asserted): one EM iteration under 0.1 s and the whole fit under 30 s
on the CDNOW-sized cohort, the 10^6 fit under 10 minutes. On a shared machine other work
changes the numbers: the load average and numba's threading layer are recorded beside them.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from sim.checks.bench import _load

__all__ = [
    "LARGE_FIT_SETTINGS",
    "LIFECYCLE_PARAMETERS",
    "LIFECYCLE_SIZES",
    "format_lifecycle_table",
    "lifecycle_cohort",
    "measure_lifecycle",
    "run_lifecycle_benchmark",
]

#: The lifecycle HMM's costliest candidate (one class, gamma rate multiplier, gamma exit
#: frailty: two quadratures) and its estimates on the CDNOW sample (``sim fit`` with ``--models
#: lifecycle``; BIC chooses the same model without the exit frailty there, 19,565.06 vs 19,565.59).
LIFECYCLE_PARAMETERS = {
    "moves": {
        ("exploration", "formation"): 1.0,
        ("formation", "stability"): 0.000632,
        ("formation", "decline"): 0.205758,
        ("stability", "decline"): 0.246283,
        ("decline", "formation"): 0.022564,
        ("decline", "ended"): 0.018971,
    },
    "rates": (0.016693, 0.066727, 0.404451, 0.016770),
    "entry_rate": 0.027153,
    "rate_shape": 0.505811,
    "exit_shape": 1.108581,
}

#: Sizes of the lifecycle part: customers of the two cohorts, weeks, EM-iteration repeats.
LIFECYCLE_SIZES = {
    "full": {"cdnow_size_customers": 23_570, "large_customers": 1_000_000, "periods": 78, "em_repeats": 5},
    "quick": {"cdnow_size_customers": 2_357, "large_customers": 20_000, "periods": 39, "em_repeats": 2},
}

#: Settings of the whole fit on 10^6 customers: starts screened on a sample of 5,000 (the
#: default), one final start with at most 40 E-steps of EM and 40 polish iterations, and the
#: node rule capped at 16 nodes (its last check is reported: the quadrature error grows with
#: the number of customers).
LARGE_FIT_SETTINGS = {"n_final": 1, "max_iter": 40, "polish": 40, "max_nodes": 16}


def _lifecycle_params():
    from sim.fitting.lifecycle import STATES, LifecycleParams

    transitions = np.zeros((1, 5, 5))
    for (source, target), value in LIFECYCLE_PARAMETERS["moves"].items():
        transitions[0, STATES.index(source), STATES.index(target)] = value
    for k in range(5):
        transitions[0, k, k] = 1.0 - transitions[0, k].sum()
    return LifecycleParams(
        np.ones(1),
        transitions,
        np.array([LIFECYCLE_PARAMETERS["rates"]]),
        np.array([LIFECYCLE_PARAMETERS["entry_rate"]]),
        LIFECYCLE_PARAMETERS["rate_shape"],
        exit_shape=LIFECYCLE_PARAMETERS["exit_shape"],
    )


def lifecycle_cohort(customers: int, periods: int = 78, seed: int = 2026):
    """Weekly repeat purchases of a cohort simulated from :data:`LIFECYCLE_PARAMETERS`.

    Parameters
    ----------
    customers : int
        Customers (entering in a uniform week of the first 12, as CDNOW's first quarter).
    periods : int, default 78
        Weeks.
    seed : int
        Seed.

    Returns
    -------
    entry, counts : ndarray
        Entry weeks (n,) and repeat purchases per week (n, periods).
    """
    from sim.fitting.lifecycle import simulate_lifecycle

    rng = np.random.default_rng(seed)
    entry = rng.integers(0, min(12, periods), customers)
    return entry, simulate_lifecycle(_lifecycle_params(), entry, periods, rng)


def _em_iteration_seconds(model, params, repeats: int) -> float:
    model._em_step(params)  # compile / warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model._em_step(params)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_lifecycle(
    customers: int, periods: int, em_repeats: int, fit_settings: dict | None = None
) -> dict:
    """Time the lifecycle HMM on one simulated cohort (see the module docstring).

    Parameters
    ----------
    customers, periods : int
        Cohort size (:func:`lifecycle_cohort`).
    em_repeats : int
        Repeats of the EM-iteration timing (median reported).
    fit_settings : dict, optional
        Settings of the whole fit besides the specification (default: the model's defaults,
        node rule on).

    Returns
    -------
    dict
        ``simulate_s``, ``group_s``, ``distinct_sequences``, ``em_iteration_s`` (by node counts
        and threads), ``fit_s``, ``fit`` (log-likelihood, E-steps, node counts, final starts at
        the best), ``threading_layer``.
    """
    import numba

    from sim.checks.bench import _threading_layer
    from sim.fitting.lifecycle import LifecycleHMM, group_sequences

    started = time.perf_counter()
    entry, counts = lifecycle_cohort(customers, periods)
    simulate_s = time.perf_counter() - started
    started = time.perf_counter()
    sequences = group_sequences(entry, counts)
    group_s = time.perf_counter() - started
    spec = dict(n_classes=1, heterogeneity="gamma", exit_heterogeneity="gamma")
    params = _lifecycle_params()
    model = LifecycleHMM(**spec, node_rule=True, **(fit_settings or {}))
    started = time.perf_counter()
    model.fit(*sequences)
    fit_s = time.perf_counter() - started
    em = {}
    threads = numba.get_num_threads()
    timed = LifecycleHMM(**spec)
    timed.set_data(*sequences)
    try:
        for nodes in sorted({(8, 6), (model.n_nodes, model.n_exit_nodes)}):
            timed.n_nodes, timed.n_exit_nodes = nodes
            for count in sorted({1, threads}):
                numba.set_num_threads(count)
                key = f"nodes_{nodes[0]}x{nodes[1]}_threads_{count}"
                em[key] = _em_iteration_seconds(timed, params, em_repeats)
    finally:
        numba.set_num_threads(threads)
    return {
        "customers": int(customers),
        "periods": int(periods),
        "simulate_s": simulate_s,
        "group_s": group_s,
        "distinct_sequences": int(len(sequences[0])),
        "em_iteration_s": em,
        "fit_s": fit_s,
        "fit": {
            "loglik": float(model.loglik_),
            "n_estep": int(model.n_estep_),
            "n_nodes": int(model.n_nodes),
            "n_exit_nodes": int(model.n_exit_nodes),
            "n_at_best": int(model.n_at_best_),
            "n_final": int(sum(np.isfinite(r.loglik) for r in model.starts_)),
            "settings": dict(fit_settings or {}),
        },
        "threading_layer": _threading_layer(),
    }


def run_lifecycle_benchmark(quick: bool = False, *, log=None) -> dict:
    """The lifecycle part of the fit benchmark: the CDNOW-sized and the large cohort.

    Parameters
    ----------
    quick : bool, default False
        :data:`LIFECYCLE_SIZES` ``["quick"]`` instead of ``["full"]``.
    log : callable, optional
        Called with a progress line per cohort.

    Returns
    -------
    dict
        ``load_before``, ``load_after``, ``cases`` (two :func:`measure_lifecycle` results),
        ``targets`` and ``against_targets``.
    """
    sizes = LIFECYCLE_SIZES["quick" if quick else "full"]
    load_before = _load()
    cases = []
    for customers, settings in (
        (sizes["cdnow_size_customers"], None),
        (sizes["large_customers"], LARGE_FIT_SETTINGS),
    ):
        cases.append(measure_lifecycle(customers, sizes["periods"], sizes["em_repeats"], settings))
        if log is not None:
            log(f"  lifecycle, {customers:,} customers: fit {cases[-1]['fit_s']:.1f} s")
    medium, large = cases
    fit = medium["fit"]
    final = f"nodes_{fit['n_nodes']}x{fit['n_exit_nodes']}_threads_"
    # at the node counts the fit ended with, with the most threads measured
    em_medium = min(value for key, value in medium["em_iteration_s"].items() if key.startswith(final))
    return {
        "load_before": load_before,
        "load_after": _load(),
        "parameters": {key: str(value) for key, value in LIFECYCLE_PARAMETERS.items()},
        "cases": cases,
        "targets": {"em_iteration_s": 0.1, "fit_s": 30.0, "large_fit_s": 600.0},
        "against_targets": {
            "em_iteration_under_0.1s": em_medium < 0.1,
            "fit_under_30s": medium["fit_s"] < 30.0,
            "large_fit_under_10min": large["fit_s"] < 600.0,
        },
    }


def format_lifecycle_table(lifecycle: dict) -> str:
    """The lifecycle part as a Markdown table.

    Parameters
    ----------
    lifecycle : dict
        From :func:`run_lifecycle_benchmark`.

    Returns
    -------
    str
    """
    cases = lifecycle["cases"]
    lines = [
        "| lifecycle HMM (C1+rate+exitG) | "
        + " | ".join(f"{c['customers']:,} × {c['periods']}" for c in cases)
        + " |",
        "|---|" + "---|" * len(cases),
        "| simulate, group (s) | "
        + " | ".join(f"{c['simulate_s']:.1f}, {c['group_s']:.1f}" for c in cases)
        + " |",
        "| distinct sequences | " + " | ".join(f"{c['distinct_sequences']:,}" for c in cases) + " |",
    ]
    keys = sorted({key for c in cases for key in c["em_iteration_s"]})
    for key in keys:
        values = [c["em_iteration_s"].get(key) for c in cases]
        lines.append(
            f"| one EM iteration, {key.replace('_', ' ')} | "
            + " | ".join("" if v is None else f"{v * 1000:.0f} ms" for v in values)
            + " |"
        )
    lines.append(
        "| whole fit (starts, node rule) | "
        + " | ".join(
            f"**{c['fit_s']:.1f} s** ({c['fit']['n_estep']:,} E-steps, nodes {c['fit']['n_nodes']}×"
            f"{c['fit']['n_exit_nodes']})"
            for c in cases
        )
        + " |"
    )
    checks = lifecycle["against_targets"]
    mark = {True: "met", False: "NOT met"}
    lines += [
        "",
        f"Load average before {lifecycle['load_before']}, after {lifecycle['load_after']}; threading layer "
        f"{cases[0]['threading_layer']}. Targets: EM iteration (at the fit's final nodes) under 0.1 s "
        f"({mark[checks['em_iteration_under_0.1s']]}), fit under 30 s ({mark[checks['fit_under_30s']]}), "
        f"10^6 under 10 minutes ({mark[checks['large_fit_under_10min']]}).",
    ]
    return "\n".join(lines)
