"""``sim bench``: the speed and memory of the engines, measured side by side in one run.

What is measured (on the baseline experiment, ``experiments/baseline.toml``: three policies,
120 monthly periods):

* **customer-steps per second** -- active customer-periods x policies simulated per wall
  second -- of the numba core (:func:`sim.engines.core.simulate_chunk`) with 1 thread and with all
  threads, of the vectorised NumPy reference (:func:`sim.engines.reference.simulate_reference`)
  and of the SimPy agent engine (:func:`sim.simulate_market`, small ``N``; ``null`` when
  that engine is not installed). Each engine's count of steps is its own (the engines agree
  on the numbers, tests/engines/test_engines_reference.py and
  tests/engines/test_engines_market.py).
  Repetitions are interleaved (core 1 thread, core all threads, NumPy, ABM, then again),
  so ratios are computed pair by pair within a repetition and their median reported.
* **compile time** of the core: cold (a fresh process with ``NUMBA_CACHE_DIR`` pointing to
  an empty folder, so every kernel compiles) and cached (a second fresh process on that
  cache), each the time of the first :func:`sim.project` call of a tiny run.
* **memory**: the peak of NumPy/Python allocations (``tracemalloc``) during
  :func:`sim.project` in fresh processes, on the path of large runs (CLVs not kept, tables
  from the sketch), for two cohort sizes and two replication counts;
  ``bytes_per_customer`` is the peak divided by the customers of one chunk (the state that
  exists per simulated customer), ``marginal_bytes_per_customer`` the growth of the peak per
  extra customer (0 means independent of the cohort size) and
  ``marginal_bytes_per_replication`` per extra replication.
* the projected time of 10^7 customers x 120 months x 10 replications at the measured
  all-threads rate (an extrapolation, not a run).
* **the bound**: how fast the core's parts run alone on one thread
  (:func:`sim.engines.bounds.kernel_bounds`): the vector pass of the step body with the random
  draws already in place (``arithmetic``), the per-customer random streams alone (``rng``),
  and both one after the other (``combined``); ``core_share_of_bound`` is the core's
  single-thread rate over the combined bound, ``core_share_of_bound_all_threads`` its
  all-threads rate over the combined bound times the threads (perfect scaling). The rest
  goes to the scalar pass (partial sums, stage changes, ends), masked ended customers and
  compaction.
* **SVML**: whether numba uses Intel's SVML (``svml``). The kernel does not call libm's
  ``exp``: it vectorises its own (:mod:`sim.model.exponential`), so its rate does not depend on
  SVML; numba >= 0.62 has no SVML support at all.

The ratio to the agent engine (``core_over_abm``) is a measured figure, not a target: the
engines answer different questions (the agent engine simulates a market with events,
capacity and competition) and the ratio moves with both.

The machine (CPU, cores, load average before and after) is recorded with the numbers: on a
shared 2-core VM other work changes them; quote medians and the spread.

Writes ``results/benchmarks/<UTC date>.json`` and ``results/benchmarks/latest.json`` (and
``--json FILE``), and prints a table. ``benchmarks/bench.py`` runs the same from a checkout.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["run_benchmarks", "format_table"]


#: Sizes of the full and the ``--quick`` benchmark.
SIZES = {
    "full": {
        "core_customers": 200_000,
        "numpy_customers": 30_000,
        "abm_customers": 1_000,
        "repeats": 5,
        "memory_customers": (262_144, 1_048_576),
        "memory_replications": (1, 4),
    },
    "quick": {
        "core_customers": 40_960,
        "numpy_customers": 8_000,
        "abm_customers": 200,
        "repeats": 3,
        "memory_customers": (65_536, 262_144),
        "memory_replications": (1, 3),
    },
}


def _baseline_config():
    from sim.model.config import config_from_dict, load_config

    root = Path(__file__).resolve().parents[2]
    path = root / "experiments" / "baseline.toml"
    if (
        path.is_file()
    ):  # recorded relative to the repository, so the JSON does not name this machine's folders
        return load_config(path), path.relative_to(root).as_posix()
    return config_from_dict({"name": "baseline"}), "built-in defaults (the baseline's values)"


def _machine() -> dict:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba

    from sim.io.results import package_versions

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "threading_layer": _threading_layer(),
        "system": f"{platform.system()} {platform.release()}",
        "versions": package_versions(),
    }


def _threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel ran yet
        return "not initialised"


def _load() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:  # pragma: no cover - not on this platform
        return None


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def _time_core(config, customers: int, threads: int) -> tuple[float, int, float]:
    """Wall seconds, customer-steps and CPU seconds (all threads of this process) of one chunk."""
    import numba

    from sim.engines.core import simulate_chunk
    from sim.model.arrays import model_arrays
    from sim.model.policies import policy_tables

    numba.set_num_threads(threads)
    arrays, tables = model_arrays(config), policy_tables(config)
    cpu = time.process_time()
    started = time.perf_counter()
    partials = simulate_chunk(arrays, tables, config.run.seed, 0, 0, customers, config.run.horizon)
    elapsed = time.perf_counter() - started
    return elapsed, int(partials.stage_periods.sum()), time.process_time() - cpu


_SPIN = None


def _spin_kernel():
    """A trivially parallel jitted loop (compiled on first use, not cached)."""
    global _SPIN
    if _SPIN is None:
        import numba

        @numba.njit(parallel=True)
        def spin(n, out):
            for index in numba.prange(out.size):
                total = 0.0
                for step in range(n):
                    total += (step % 7) * 1e-9 * (index + 1)
                out[index] = total

        _SPIN = spin
    return _SPIN


def _available_cores(threads: int, seconds: float = 0.5) -> float:
    """CPU seconds per wall second that ``threads`` busy numba threads get right now: about
    ``threads`` on an idle machine, less when other processes hold cores. Recorded with the
    timings, since a thread-scaling figure means little when it is low.
    """
    import numba
    import numpy as np

    kernel = _spin_kernel()
    numba.set_num_threads(threads)
    out = np.zeros(64 * threads)
    kernel(10, out)
    n = 100_000
    while True:
        cpu, started = time.process_time(), time.perf_counter()
        kernel(n, out)
        wall = time.perf_counter() - started
        if wall > seconds or n > 10**10:
            return (time.process_time() - cpu) / wall
        n *= 4


def _bounds(config) -> dict:
    """The single-thread rates of the core's parts alone (:func:`sim.engines.bounds.kernel_bounds`),
    the best of two measurements (the first also warms the CPU up).
    """
    import numba

    from sim.engines.bounds import kernel_bounds
    from sim.model.arrays import model_arrays
    from sim.model.policies import policy_tables

    numba.set_num_threads(1)
    arrays, tables = model_arrays(config), policy_tables(config)
    runs = [kernel_bounds(arrays, tables, config.run.seed) for _ in range(2)]
    return {key: max(run[key] for run in runs) for key in runs[0]}


def _svml_state() -> dict:
    """Whether numba vectorises libm calls with Intel's SVML (it cannot since numba 0.62), and
    that the core does not depend on it.
    """
    import numba

    return {
        "numba_using_svml": bool(getattr(numba.config, "USING_SVML", False)),
        "kernel_calls_libm_exp": False,
        "note": "the core vectorises its own exp (sim.model.exponential, glibc's algorithm and bits), "
        "so its rate is the same with or without SVML",
    }


def _time_numpy(config, customers: int) -> tuple[float, int]:
    from sim.engines.reference import simulate_reference

    started = time.perf_counter()
    out = simulate_reference(config, customers=customers)
    elapsed = time.perf_counter() - started
    return elapsed, int(out["stage_periods"].sum())


def _time_abm(config, customers: int) -> tuple[float, int]:
    from sim.engines.market.engine import simulate_market

    started = time.perf_counter()
    result = simulate_market(config, customers=customers, replications=1)
    elapsed = time.perf_counter() - started
    steps = result.timings.get("customer_periods")
    if steps is None:  # pragma: no cover - older engine without the count
        steps = int(result.by_stage["customer_periods"].sum())
    return elapsed, int(steps)


_COMPILE_SNIPPET = """
import time
started = time.perf_counter()
import sim
imported = time.perf_counter()
policies = [{"name": "none", "kind": "none"}, {"name": "u", "kind": "uniform", "spend": 1.0}]
config = sim.config_from_dict({"policies": policies})
sim.project(config, customers=10, replications=1, horizon=3, threads=1)
done = time.perf_counter()
print(imported - started, done - imported)
"""


def _compile_seconds() -> dict:
    """First-call time of a tiny projection in fresh processes: cold and cached caches."""
    with tempfile.TemporaryDirectory(prefix="sim-bench-numba-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        timings = {}
        for label in ("cold", "cached"):
            out = subprocess.run(
                [sys.executable, "-c", _COMPILE_SNIPPET],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=True,
            ).stdout.split()
            timings[f"{label}_import_s"] = float(out[0])
            timings[f"{label}_s"] = float(out[1])
    return timings


_MEMORY_SNIPPET = """
import json, sys, tracemalloc
import sim, sim.tables.chunks
sim.tables.chunks.CLV_KEEP_LIMIT = 0  # the path of large runs: tables from the CLV sketch
customers, replications, chunk = (int(value) for value in sys.argv[1:4])
config = sim.config_from_dict({"run": {"chunk_customers": chunk, "horizon": 120}})
sim.project(config, customers=4096, replications=1, keep_clv=False)  # compile / load the kernels first
tracemalloc.start()
sim.project(config, customers=customers, replications=replications, keep_clv=False)
current, peak = tracemalloc.get_traced_memory()
print(json.dumps({"peak": peak}))
"""


def _memory(customers: tuple[int, int], replications: tuple[int, int]) -> dict:
    """Peak traced allocations of sim.project in fresh processes (CLVs not kept)."""
    chunk = min(customers)
    runs = {}
    for n, r in (
        (customers[0], replications[0]),
        (customers[1], replications[0]),
        (customers[0], replications[1]),
    ):
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_SNIPPET, str(n), str(r), str(chunk)],
            capture_output=True,
            text=True,
            timeout=1800,
            check=True,
        ).stdout
        runs[(n, r)] = json.loads(out.strip().splitlines()[-1])["peak"]
    base = runs[(customers[0], replications[0])]
    return {
        "chunk_customers": chunk,
        "peak_bytes": {f"{n}x{r}": peak for (n, r), peak in runs.items()},
        "bytes_per_customer": base / chunk,
        "marginal_bytes_per_customer": (runs[(customers[1], replications[0])] - base)
        / (customers[1] - customers[0]),
        "marginal_bytes_per_replication": (runs[(customers[0], replications[1])] - base)
        / (replications[1] - replications[0]),
    }


def run_benchmarks(
    quick: bool = False,
    *,
    include_compile: bool = True,
    include_memory: bool = True,
    include_abm: bool = True,
    repeats: int | None = None,
) -> dict:
    """Run every measurement and return the report (see the module docstring for the keys).

    Parameters
    ----------
    quick : bool
        Smaller sizes and fewer repetitions (about a minute instead of several).
    include_compile, include_memory, include_abm : bool
        Skip a part (its keys are then ``null``).
    repeats : int, optional
        Repetitions of the speed measurements (default 5, quick 3).
    """
    import numba

    sizes = SIZES["quick" if quick else "full"]
    repeats = repeats or sizes["repeats"]
    config, source = _baseline_config()
    config = config.with_overrides(run={"replications": 1})
    all_threads = numba.config.NUMBA_NUM_THREADS
    load_before = _load()
    started = time.perf_counter()
    # warm-up: compile (or load) the kernels, and the reference's helpers
    _time_core(config, 4096, 1)
    _time_numpy(config, 256)
    abm = include_abm
    if abm:
        _time_abm(config, 20)
    rates = {"core_1thread": [], "core": [], "numpy": [], "abm": []}
    cpu_rates = {"core_1thread": [], "core": []}
    ratios = {"threads": [], "numpy": [], "abm": []}
    available = [_available_cores(all_threads)]
    for _ in range(repeats):
        seconds, steps, cpu = _time_core(config, sizes["core_customers"], 1)
        rates["core_1thread"].append(steps / seconds)
        cpu_rates["core_1thread"].append(steps / cpu)
        seconds, steps, cpu = _time_core(config, sizes["core_customers"], all_threads)
        rates["core"].append(steps / seconds)
        cpu_rates["core"].append(steps / cpu)
        seconds, steps = _time_numpy(config, sizes["numpy_customers"])
        rates["numpy"].append(steps / seconds)
        ratios["threads"].append(rates["core"][-1] / rates["core_1thread"][-1])
        ratios["numpy"].append(rates["core"][-1] / rates["numpy"][-1])
        if abm:
            seconds, steps = _time_abm(config, sizes["abm_customers"])
            rates["abm"].append(steps / seconds)
            ratios["abm"].append(rates["core"][-1] / rates["abm"][-1])
    available.append(_available_cores(all_threads))
    bounds = _bounds(config)
    numba.set_num_threads(all_threads)
    _, steps, _ = _time_core(config, 40_960, all_threads)
    steps_per_customer = steps / 40_960
    core_rate = statistics.median(rates["core"])
    report = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "config": source,
        "machine": _machine(),
        "load_average_before": load_before,
        "repeats": repeats,
        "sizes": {key: value for key, value in sizes.items() if key != "repeats"},
        "core_steps_per_s": core_rate,
        "core_1thread_steps_per_s": statistics.median(rates["core_1thread"]),
        "numpy_steps_per_s": statistics.median(rates["numpy"]),
        "abm_steps_per_s": statistics.median(rates["abm"]) if rates["abm"] else None,
        "threads_speedup": statistics.median(ratios["threads"]),
        "core_steps_per_cpu_s": statistics.median(cpu_rates["core"]),
        "core_1thread_steps_per_cpu_s": statistics.median(cpu_rates["core_1thread"]),
        "available_cores_measured": available,
        "core_over_numpy": statistics.median(ratios["numpy"]),
        "core_over_abm": statistics.median(ratios["abm"]) if ratios["abm"] else None,
        "spread": {name: _spread(values) for name, values in rates.items() if values},
        "ratio_runs": {name: values for name, values in ratios.items() if values},
        "steps_per_customer": steps_per_customer,
        "projected_seconds_1e7_customers_120_months_10_replications": 1e8 * steps_per_customer / core_rate,
        "core_bounds_1thread": bounds,
        "core_share_of_bound": statistics.median(rates["core_1thread"]) / bounds["combined_steps_per_s"],
        "core_share_of_bound_all_threads": core_rate / (bounds["combined_steps_per_s"] * all_threads),
        "svml": _svml_state(),
        "compile_s": None,
        "compile": None,
        "bytes_per_customer": None,
        "memory": None,
    }
    if include_compile:
        report["compile"] = _compile_seconds()
        report["compile_s"] = report["compile"]["cold_s"]
        report["compile_cached_s"] = report["compile"]["cached_s"]
    if include_memory:
        report["memory"] = _memory(sizes["memory_customers"], sizes["memory_replications"])
        report["bytes_per_customer"] = report["memory"]["bytes_per_customer"]
    report["load_average_after"] = _load()
    report["benchmark_seconds"] = time.perf_counter() - started
    return report


def _millions(value) -> str:
    return "n/a" if value is None else f"{value / 1e6:,.2f}"


def format_table(report: dict) -> str:
    """The report as a Markdown table (what the README quotes)."""
    spread = report.get("spread", {})

    def rate_row(label, key, name):
        cell = spread.get(name)
        span = f"{cell['min'] / 1e6:,.2f}-{cell['max'] / 1e6:,.2f}" if cell else "n/a"
        return f"| {label} | {_millions(report.get(key))} | {span} |"

    lines = [
        "| measure | median | range |",
        "|---|---|---|",
        rate_row("core, all threads (M customer-steps/s)", "core_steps_per_s", "core"),
        rate_row("core, 1 thread (M customer-steps/s)", "core_1thread_steps_per_s", "core_1thread"),
        rate_row("NumPy reference (M customer-steps/s)", "numpy_steps_per_s", "numpy"),
        rate_row("SimPy agent engine (M customer-steps/s)", "abm_steps_per_s", "abm"),
    ]
    for label, key, runs in (
        ("all threads / 1 thread", "threads_speedup", "threads"),
        ("core / NumPy", "core_over_numpy", "numpy"),
        ("core / agent engine", "core_over_abm", "abm"),
    ):
        values = report.get("ratio_runs", {}).get(runs)
        span = f"{min(values):,.1f}-{max(values):,.1f}" if values else "n/a"
        value = report.get(key)
        lines.append(f"| {label} | {'n/a' if value is None else f'{value:,.1f}x'} | {span} |")
    compile_info = report.get("compile") or {}
    if compile_info:
        lines.append(
            f"| compile, cold / cached (s) | {compile_info['cold_s']:.1f} / {compile_info['cached_s']:.2f} "
            "| |"
        )
    memory = report.get("memory") or {}
    if memory:
        lines.append(
            f"| peak bytes per customer in a chunk of {memory['chunk_customers']:,} | "
            f"{memory['bytes_per_customer']:,.0f} | |"
        )
        lines.append(
            f"| extra peak bytes per extra customer / replication | "
            f"{memory['marginal_bytes_per_customer']:,.2f} / "
            f"{memory['marginal_bytes_per_replication']:,.0f} | |"
        )
    bounds = report.get("core_bounds_1thread") or {}
    if bounds:
        lines.append(
            "| bound, 1 thread: step arithmetic / random numbers / both (M customer-steps/s) | "
            f"{_millions(bounds['arithmetic_steps_per_s'])} / {_millions(bounds['rng_steps_per_s'])} / "
            f"{_millions(bounds['combined_steps_per_s'])} | |"
        )
        lines.append(
            f"| core / bound: 1 thread, all threads | {report['core_share_of_bound']:.0%}, "
            f"{report['core_share_of_bound_all_threads']:.0%} | |"
        )
    projected = report.get("projected_seconds_1e7_customers_120_months_10_replications")
    if projected is not None:
        lines.append(f"| 10^7 customers x 120 months x 10 replications (projected) | {projected:,.0f} s | |")
    machine = report.get("machine", {})
    lines.append("")
    lines.append(
        f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, numba threads "
        f"{machine.get('numba_threads')} ({machine.get('threading_layer')}); load average before "
        f"{report.get('load_average_before')}, after {report.get('load_average_after')}; "
        f"{report.get('repeats')} repetitions, {report.get('created')}."
    )
    return "\n".join(lines)


def write_report(report: dict, extra: Path | None) -> list[Path]:
    from sim.io.results import atomic_write_text

    text = json.dumps(report, indent=2, default=str) + "\n"
    folder = Path("results") / "benchmarks"
    day = report["created"][:10]
    written = [
        atomic_write_text(folder / f"{day}.json", text),
        atomic_write_text(folder / "latest.json", text),
    ]
    if extra is not None:
        written.append(atomic_write_text(extra, text))
    return written
