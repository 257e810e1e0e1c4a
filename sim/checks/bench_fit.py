"""``sim bench --fit``: the speed and memory of the customer-base models on transaction logs.

The whole path of ``sim fit`` but the files, phase by phase, side by side in one run on two
logs:

* **CDNOW-sized**, twice: the bundled CDNOW 1/10 sample ten times over with new customer
  ids — 23,570 customers (the size of the whole CDNOW cohort), 69,190 rows — real dates,
  amounts and same-day rows, the structure of the published data set at its full size (but
  only the sample's distinct (x, t_x, T) rows, which is all the likelihoods see); and a
  synthetic log of 23,570 customers drawn like the next one (as many distinct rows as a real
  cohort of that size would have);
* **10^6 customers**: a synthetic log drawn from the models fitted to CDNOW (Pareto/NBD
  purchases and dropout, Gamma-Gamma amounts; acquisition on a uniform day of the first
  quarter of 1997, observed to 1998-06-30, dates in days), written as CSV like a real export.

The phases, timed in this order: ``read`` (:func:`sim.data.read_transactions` of the CSV:
parse, check every value, merge same-day rows), ``summarise``
(:func:`sim.data.split_transactions`: calibration to 1997-09-30, holdout to 1998-06-30, in
weeks), ``fit_bgnbd``, ``fit_pnbd``, ``fit_ggamma`` (maximum likelihood,
:mod:`sim.fitting`), and ``predict`` (P(alive) and expected holdout transactions of both
transaction models and the Gamma-Gamma expected spend, for every customer). Each repeat runs
in a fresh process, and each phase's peak resident memory is measured on its own (Linux: the
peak, ``VmHWM``, is reset before the phase and read after it; the interpreter, the libraries
and the data of earlier phases still held are included). Timings are medians over the
repeats; the machine (CPU, cores, load average before and after) is recorded beside them —
on a shared machine other work changes them.

Every phase of a case covers the same customers; the report says how many each one saw
(``coverage``: customers read, summarised, fitted — the Gamma-Gamma on the repeat buyers —
and predicted).

Targets reported against (not asserted): the whole path for 10^6 customers under 60 s and
2 GB; the Pareto/NBD fit on the CDNOW-sized log under 1 s. For scale, ``lifetimes`` and
PyMC-Marketing fit the BG/NBD on CDNOW in 0.25-1 s and the Pareto/NBD in 3.6-8 s.

Optional part, ``run_fit_benchmark(..., lifecycle=True)``: the lifecycle HMM
(:mod:`sim.fitting.lifecycle`) on a CDNOW-sized and a 10^6-customer cohort simulated from
its specification chosen on CDNOW — one EM iteration and the whole fit with its starts,
measured by :mod:`sim.checks._bench_lifecycle`. The report gains a ``lifecycle`` key (the
other keys are unchanged).

Writes ``results/benchmarks/fit-<UTC date>.json`` and ``results/benchmarks/fit-latest.json``
(and ``--json FILE``) and prints a Markdown table.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sim.checks._bench_lifecycle import format_lifecycle_table, run_lifecycle_benchmark
from sim.checks.bench import _load, _machine

__all__ = [
    "FIT_SIZES",
    "PHASES",
    "format_fit_table",
    "run_fit_benchmark",
    "synthetic_log",
    "write_fit_report",
]

#: Sizes of the full and the ``--quick`` run: copies of the CDNOW sample (first case),
#: customers of the CDNOW-sized synthetic log (second) and of the large one (third), and the
#: repeats of the first two and of the third.
FIT_SIZES = {
    "full": {
        "cdnow_copies": 10,
        "cdnow_size_customers": 23_570,
        "synthetic_customers": 1_000_000,
        "repeats": 3,
        "large_repeats": 3,
    },
    "quick": {
        "cdnow_copies": 1,
        "cdnow_size_customers": 2_357,
        "synthetic_customers": 50_000,
        "repeats": 1,
        "large_repeats": 1,
    },
}

#: The timed phases, in order.
PHASES = ("read", "summarise", "fit_bgnbd", "fit_pnbd", "fit_ggamma", "predict")

#: The split of every case (the standard CDNOW split).
SPLIT = {"calibration_end": "1997-09-30", "holdout_end": "1998-06-30", "unit": "week"}

#: Parameters of the synthetic log: the Pareto/NBD and Gamma-Gamma fitted to CDNOW (Fader &
#: Hardie 2005 notes; reproduced by tests/fitting/test_fitting_published.py).
SYNTHETIC_PARAMETERS = {
    "pnbd": {"r": 0.5533, "alpha": 10.5776, "s": 0.6061, "beta": 11.6650},
    "ggamma": {"p": 6.25, "q": 3.74, "gamma": 15.44},
}

TARGETS = {
    "large_total_seconds": 60.0,
    "large_peak_bytes": 2 * 1024**3,
    "cdnow_pnbd_fit_seconds": 1.0,
}

REFERENCE = {
    "lifetimes / PyMC-Marketing, BG/NBD on CDNOW": "0.25-1 s",
    "lifetimes / PyMC-Marketing, Pareto/NBD on CDNOW": "3.6-8 s",
}

_FIRST_DAY = np.datetime64("1997-01-01")
_LAST_DAY = np.datetime64("1998-06-30")
_ACQUISITION_DAYS = 90  # the first quarter of 1997


def synthetic_log(customers: int, seed: int = 2024) -> pd.DataFrame:
    """A transaction log of ``customers`` customers drawn from the models fitted to CDNOW.

    Parameters
    ----------
    customers : int
        Customers in the log.
    seed : int
        Seed of the generator (the same seed gives the same log).

    Returns
    -------
    DataFrame
        ``customer_id`` (1 .. customers), ``date`` (datetime64, days), ``amount`` (dollars,
        two decimals), one row per purchase, ordered by date.

    Notes
    -----
    Each customer makes a first purchase on a uniform day of the first quarter of 1997, then
    repeat purchases as a Poisson process of rate λ ~ Gamma(r, α) per week until she drops
    out after τ ~ Exp(μ), μ ~ Gamma(s, β), observed to 1998-06-30 (Pareto/NBD at
    :data:`SYNTHETIC_PARAMETERS`); every purchase has a value ~ Gamma(p, ν), ν ~ Gamma(q, γ)
    (Gamma-Gamma). Purchases fall on the day of their time, so a customer can have several
    on one day (merged by the reader, as in the real data).
    """
    rng = np.random.default_rng(seed)
    pnbd, gg = SYNTHETIC_PARAMETERS["pnbd"], SYNTHETIC_PARAMETERS["ggamma"]
    first = rng.integers(0, _ACQUISITION_DAYS, customers)
    last = int((_LAST_DAY - _FIRST_DAY).astype(int))
    rate = rng.gamma(pnbd["r"], 1.0 / pnbd["alpha"], customers)
    dropout = rng.gamma(pnbd["s"], 1.0 / pnbd["beta"], customers)
    lifetime = rng.exponential(1.0 / dropout)
    observed = np.minimum(lifetime, (last + 1 - first) / 7.0)  # weeks, to the end of the last day
    repeats = rng.poisson(rate * observed)
    owner = np.repeat(np.arange(customers), repeats)
    times = rng.random(owner.size) * observed[owner]
    days = np.concatenate([first, np.minimum(first[owner] + np.floor(times * 7.0).astype(np.int64), last)])
    who = np.concatenate([np.arange(customers), owner])
    value_rate = rng.gamma(gg["q"], 1.0 / gg["gamma"], customers)
    amounts = np.round(rng.gamma(gg["p"], 1.0 / value_rate[who]), 2)
    order = np.argsort(days, kind="stable")
    return pd.DataFrame(
        {
            "customer_id": who[order] + 1,
            "date": (_FIRST_DAY + days[order]).astype("datetime64[ns]"),
            "amount": amounts[order],
        }
    )


def _cdnow_copies(copies: int) -> pd.DataFrame:
    from sim.data.cdnow import load_cdnow_sample

    sample = load_cdnow_sample()
    width = 10 ** len(str(int(sample["customer_id"].max())))
    return pd.concat(
        [sample.assign(customer_id=sample["customer_id"] + copy * width) for copy in range(copies)],
        ignore_index=True,
    )


def _write_csv(log: pd.DataFrame, path: Path) -> Path:
    from sim.io.results import atomic_write_text

    table = log.assign(date=log["date"].dt.strftime("%Y-%m-%d"))
    return atomic_write_text(path, table.to_csv(index=False, float_format="%.2f"))


# --------------------------------------------------------------------------- one measured run


def _peak_rss_bytes() -> int:
    """Peak resident memory of this process since the last :func:`_reset_peak` (Linux:
    ``VmHWM`` of ``/proc/self/status``, which — unlike ``ru_maxrss`` — is not inherited from
    the parent across fork and exec); elsewhere ``ru_maxrss``, the peak since the start.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _reset_peak() -> bool:
    """Reset the peak resident memory to the current one (Linux >= 4.0: ``5`` to
    ``/proc/self/clear_refs``); False where that is not possible (peaks are then cumulative).
    """
    try:  # a control file of the kernel, not a file written: no atomic writer here
        handle = os.open("/proc/self/clear_refs", os.O_WRONLY)
    except OSError:
        return False
    try:
        os.write(handle, b"5")
    except OSError:
        return False
    finally:
        os.close(handle)
    return True


def measure_path(path: str | Path) -> dict:
    """Time the phases on one log file in this process (see the module docstring).

    Parameters
    ----------
    path : str or Path
        A CSV transaction log with columns ``customer_id, date, amount``.

    Returns
    -------
    dict
        ``seconds`` and ``peak_rss_bytes`` per phase (the peak during the phase where
        ``peak_per_phase``, else the high-water mark so far), ``baseline_rss_bytes`` (after
        the imports), ``coverage`` (customers each phase saw),
        ``log`` (rows read, transactions, rows merged), ``distinct_rows`` (the weighted rows
        the likelihoods evaluate) and ``fits`` (converged, log-likelihood, estimates).
    """
    from sim.data.customers import split_transactions
    from sim.data.transactions import read_transactions
    from sim.fitting.base import compress_customers, get_model

    baseline = _peak_rss_bytes()
    resettable = _reset_peak()
    seconds, rss, fits = {}, {}, {}

    def timed(name, function):
        _reset_peak()
        started = time.perf_counter()
        value = function()
        seconds[name] = time.perf_counter() - started
        rss[name] = _peak_rss_bytes()
        return value

    log = timed("read", lambda: read_transactions(path))
    data = timed("summarise", lambda: split_transactions(log, **SPLIT))
    for name in ("bgnbd", "pnbd", "ggamma"):
        fits[name] = timed(f"fit_{name}", lambda name=name: get_model(name).fit(data))

    def predict():
        out = {}
        for name in ("bgnbd", "pnbd"):
            out[f"p_alive_{name}"] = fits[name].p_alive(data)
            out[f"expected_{name}"] = fits[name].expected_holdout_transactions(data)
        out["expected_spend_ggamma"] = fits["ggamma"].expected_spend(data)
        return out

    predictions = timed("predict", predict)
    transaction_rows = compress_customers(frequency=data.frequency, recency=data.recency, T=data.T)
    return {
        "seconds": seconds,
        "peak_rss_bytes": rss,
        "baseline_rss_bytes": baseline,
        "peak_per_phase": resettable,
        "coverage": {
            "read": int(log.attrs["customers"]),
            "summarised": int(data.n_customers),
            "late": int(data.late_customers),
            "fitted": {name: int(fit.n_customers) for name, fit in fits.items()},
            "repeat_buyers": int((data.frequency > 0).sum()),
            "predicted": {name: int(len(values)) for name, values in predictions.items()},
        },
        "log": {
            "rows_read": int(log.attrs["rows_read"]),
            "transactions": int(log.attrs["transactions"]),
            "rows_merged": int(log.attrs["rows_merged"]),
        },
        "distinct_rows": {"frequency_recency_T": int(transaction_rows.n_rows)},
        "fits": {
            name: {
                "converged": bool(fit.converged),
                "loglik": float(fit.loglik),
                "params": {key: float(value) for key, value in fit.params.items()},
                "iterations": int(fit.iterations),
            }
            for name, fit in fits.items()
        },
    }


def _child() -> None:
    """Entry point of the measuring subprocess: ``argv[1]`` the log, ``argv[2]`` the JSON out."""
    from sim.io.results import atomic_write_text

    atomic_write_text(sys.argv[2], json.dumps(measure_path(sys.argv[1])))


def _measure_in_subprocess(path: Path, workdir: Path, label: str) -> dict:
    out = workdir / f"{label}.json"
    root = str(Path(__file__).resolve().parents[2])
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    )
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from sim.checks.bench_fit import _child; _child()", str(path), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    )
    report = json.loads(out.read_text())
    report["process_seconds"] = time.perf_counter() - started
    return report


# --------------------------------------------------------------------------- the benchmark


def _summarise_case(name: str, description: str, path: Path, runs: list[dict]) -> dict:
    phases = {
        phase: {
            "median_s": statistics.median(run["seconds"][phase] for run in runs),
            "runs_s": [run["seconds"][phase] for run in runs],
        }
        for phase in PHASES
    }
    totals = [sum(run["seconds"][phase] for phase in PHASES) for run in runs]
    peaks = [max(run["peak_rss_bytes"].values()) for run in runs]
    first = runs[0]
    return {
        "name": name,
        "description": description,
        "log_bytes": path.stat().st_size,
        "customers": first["coverage"]["read"],
        "log": first["log"],
        "distinct_rows": first["distinct_rows"],
        "repeats": len(runs),
        "phases": phases,
        "total_median_s": statistics.median(totals),
        "total_runs_s": totals,
        "peak_rss_bytes": max(peaks),
        "peak_rss_runs_bytes": peaks,
        "rss_after_phase_bytes": {
            phase: max(run["peak_rss_bytes"][phase] for run in runs) for phase in PHASES
        },
        "baseline_rss_bytes": max(run["baseline_rss_bytes"] for run in runs),
        "coverage": first["coverage"],
        "coverage_same_in_every_run": all(run["coverage"] == first["coverage"] for run in runs),
        "fits": first["fits"],
    }


def run_fit_benchmark(
    quick: bool = False, *, repeats: int | None = None, log=None, lifecycle: bool = False
) -> dict:
    """Measure the fit path on the CDNOW-sized and the 10^6-customer logs (module docstring).

    Parameters
    ----------
    quick : bool, default False
        The sizes of :data:`FIT_SIZES` ``["quick"]`` (one copy of CDNOW, 2,357 and 50,000
        synthetic customers, one repeat) instead of ``["full"]``.
    repeats : int, optional
        Repeats of each case (default: the size's ``repeats`` and ``large_repeats``).
    log : callable, optional
        Called with a progress line per measured run (e.g. ``print`` in the CLI).
    lifecycle : bool, default False
        Also measure the lifecycle HMM (:func:`run_lifecycle_benchmark`), under the key
        ``lifecycle``.

    Returns
    -------
    dict
        ``created``, ``quick``, ``machine``, ``load_before``, ``load_after``, ``split``,
        ``cases`` (one per log: phases with median and per-run seconds, total, peak RSS,
        coverage, fits), ``targets``, ``against_targets`` and ``reference``.
    """
    sizes = FIT_SIZES["quick" if quick else "full"]
    load_before = _load()
    started = time.perf_counter()
    cases = []
    with tempfile.TemporaryDirectory(prefix="sim-bench-fit-") as folder:
        workdir = Path(folder)
        copies = sizes["cdnow_copies"]
        medium = sizes["cdnow_size_customers"]
        large = sizes["synthetic_customers"]
        logs = [
            (
                f"cdnow_x{copies}",
                f"the CDNOW 1/10 sample x {copies} with new customer ids",
                _write_csv(_cdnow_copies(copies), workdir / "cdnow.csv"),
                repeats or sizes["repeats"],
            ),
            (
                f"synthetic_{medium}",
                f"{medium:,} customers drawn from the Pareto/NBD and Gamma-Gamma fitted to CDNOW",
                _write_csv(synthetic_log(medium, seed=2025), workdir / "synthetic_medium.csv"),
                repeats or sizes["repeats"],
            ),
            (
                "synthetic_1e6" if large == 1_000_000 else f"synthetic_{large}",
                f"{large:,} customers drawn from the Pareto/NBD and Gamma-Gamma fitted to CDNOW",
                _write_csv(synthetic_log(large), workdir / "synthetic.csv"),
                repeats or sizes["large_repeats"],
            ),
        ]
        for name, description, path, count in logs:
            runs = []
            for repeat in range(count):
                runs.append(_measure_in_subprocess(path, workdir, f"{name}-{repeat}"))
                if log is not None:
                    total = sum(runs[-1]["seconds"].values())
                    log(f"  {name} run {repeat + 1}/{count}: {total:.2f} s")
            cases.append(_summarise_case(name, description, path, runs))
    large_case = cases[-1]
    cdnow_size_pnbd = max(case["phases"]["fit_pnbd"]["median_s"] for case in cases[:-1])
    report = {
        "kind": "fit_benchmark",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": _machine(),
        "load_before": load_before,
        "load_after": _load(),
        "wall_seconds": time.perf_counter() - started,
        "split": dict(SPLIT),
        "phases": list(PHASES),
        "cases": cases,
        "targets": {
            "large_total_s": TARGETS["large_total_seconds"],
            "large_peak_rss_bytes": TARGETS["large_peak_bytes"],
            "cdnow_size_pnbd_fit_s": TARGETS["cdnow_pnbd_fit_seconds"],
        },
        "against_targets": {
            "large_total_under_60s": large_case["total_median_s"] < TARGETS["large_total_seconds"],
            "large_peak_under_2GB": large_case["peak_rss_bytes"] < TARGETS["large_peak_bytes"],
            "cdnow_size_pnbd_under_1s": cdnow_size_pnbd < TARGETS["cdnow_pnbd_fit_seconds"],
        },
        "reference": dict(REFERENCE),
    }
    if lifecycle:
        report["lifecycle"] = run_lifecycle_benchmark(quick, log=log)
    return report


# --------------------------------------------------------------------------- report

_LABELS = {
    "read": "read (parse, check, merge same-day rows)",
    "summarise": "summarise (split, per-customer x, t_x, T)",
    "fit_bgnbd": "fit BG/NBD",
    "fit_pnbd": "fit Pareto/NBD",
    "fit_ggamma": "fit Gamma-Gamma",
    "predict": "predict every customer (P(alive), E[holdout], E[spend])",
}


def _mb(value: float) -> str:
    return f"{value / 1024**2:,.0f} MB"


def format_fit_table(report: dict) -> str:
    """The report as a Markdown table (seconds are medians over the repeats) and its context.

    Parameters
    ----------
    report : dict
        From :func:`run_fit_benchmark`.

    Returns
    -------
    str
    """
    cases = report["cases"]
    header = (
        "| phase (median wall time, peak memory) | "
        + " | ".join(f"{case['name']} ({case['customers']:,} customers)" for case in cases)
        + " |"
    )
    lines = [header, "|---|" + "---|" * len(cases)]
    for phase in report["phases"]:
        lines.append(
            f"| {_LABELS.get(phase, phase)} | "
            + " | ".join(
                f"{case['phases'][phase]['median_s']:.3f} s, {_mb(case['rss_after_phase_bytes'][phase])}"
                for case in cases
            )
            + " |"
        )
    lines.append(
        "| **whole path** | " + " | ".join(f"**{case['total_median_s']:.2f} s**" for case in cases) + " |"
    )
    lines.append(
        "| peak resident memory | " + " | ".join(_mb(case["peak_rss_bytes"]) for case in cases) + " |"
    )
    lines.append(
        "| rows → transactions (same-day merged) | "
        + " | ".join(f"{case['log']['rows_read']:,} → {case['log']['transactions']:,}" for case in cases)
        + " |"
    )
    lines.append(
        "| distinct (x, t_x, T) rows in the likelihood | "
        + " | ".join(f"{case['distinct_rows']['frequency_recency_T']:,}" for case in cases)
        + " |"
    )
    lines.append(
        "| repeats (fresh process each) | " + " | ".join(str(case["repeats"]) for case in cases) + " |"
    )
    machine = report["machine"]
    lines += [
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores; load average before {report['load_before']}, "
        f"after {report['load_after']}. Memory: peak RSS of the measuring process (interpreter and "
        f"libraries included: {_mb(cases[0]['baseline_rss_bytes'])} after the imports).",
    ]
    checks = report["against_targets"]
    large = cases[-1]
    mark = {True: "met", False: "NOT met"}
    pnbd = " and ".join(
        f"{case['phases']['fit_pnbd']['median_s']:.3f} s ({case['name']})" for case in cases[:-1]
    )
    lines += [
        f"Targets: whole path for {large['customers']:,} customers under 60 s: "
        f"{large['total_median_s']:.1f} s ({mark[checks['large_total_under_60s']]}); under 2 GB: "
        f"{_mb(large['peak_rss_bytes'])} ({mark[checks['large_peak_under_2GB']]}); Pareto/NBD fit on a "
        f"CDNOW-sized cohort under 1 s: {pnbd} ({mark[checks['cdnow_size_pnbd_under_1s']]}).",
        "For scale: " + "; ".join(f"{name}: {value}" for name, value in report["reference"].items()) + ".",
    ]
    if "lifecycle" in report:
        lines += ["", format_lifecycle_table(report["lifecycle"])]
    return "\n".join(lines)


def write_fit_report(report: dict, extra: Path | None = None) -> list[Path]:
    """Write ``results/benchmarks/fit-<UTC date>.json`` and ``fit-latest.json`` (and ``extra``).

    Parameters
    ----------
    report : dict
        From :func:`run_fit_benchmark`.
    extra : Path, optional
        Another file to write the report to.

    Returns
    -------
    list of Path
    """
    from sim.io.results import atomic_write_text

    text = json.dumps(report, indent=2, default=str) + "\n"
    folder = Path("results") / "benchmarks"
    day = report["created"][:10]
    written = [
        atomic_write_text(folder / f"fit-{day}.json", text),
        atomic_write_text(folder / "fit-latest.json", text),
    ]
    if extra is not None:
        written.append(atomic_write_text(extra, text))
    return written
