"""The benchmark harness (``sim bench``) measures like with like and reports honestly.

No speed is asserted here (speed lives in ``benchmarks/`` and ``results/benchmarks/``):
these tests check that the three engines are timed on exactly the same work (the same
customer-steps, counted independently by each engine), and that the report's ratios and
projections are the arithmetic they claim to be.
"""

from __future__ import annotations

import statistics

import pytest

from sim.checks import bench


@pytest.fixture(scope="module")
def bench_config():
    config, source = bench._baseline_config()
    assert source == "experiments/baseline.toml"  # relative: the JSON does not name this machine's folders
    return config.with_overrides(run={"replications": 1, "horizon": 24})


def test_the_engines_are_timed_on_identical_customer_steps(bench_config):
    """Core (1 and 2 threads), NumPy reference and agent engine count the same active
    customer-periods x policies for the same customers: same model, same random streams.
    """
    _, core_1, _ = bench._time_core(bench_config, 300, 1)
    _, core_2, _ = bench._time_core(bench_config, 300, 2)
    _, numpy_steps = bench._time_numpy(bench_config, 300)
    _, abm_steps = bench._time_abm(bench_config, 300)
    n_policies, horizon = len(bench_config.policy_names), bench_config.run.horizon
    assert core_1 == core_2 == numpy_steps == abm_steps
    # active customer-periods: at least period 0 of every customer, at most every period
    assert 300 * n_policies <= core_1 <= 300 * n_policies * horizon


def test_report_ratios_are_pairwise_medians_of_the_same_run(monkeypatch):
    sizes = {
        "core_customers": 4096,
        "numpy_customers": 256,
        "abm_customers": 20,
        "repeats": 3,
        "memory_customers": (4096, 8192),
        "memory_replications": (1, 2),
    }
    monkeypatch.setitem(bench.SIZES, "quick", sizes)
    report = bench.run_benchmarks(True, include_compile=False, include_memory=False)
    for key in ("core_steps_per_s", "core_1thread_steps_per_s", "numpy_steps_per_s", "abm_steps_per_s"):
        assert report[key] > 0
    runs = report["spread"]
    assert len(runs["core"]["runs"]) == len(runs["numpy"]["runs"]) == 3
    pairwise = [core / numpy for core, numpy in zip(runs["core"]["runs"], runs["numpy"]["runs"])]
    assert report["ratio_runs"]["numpy"] == pytest.approx(pairwise, rel=1e-12)
    assert report["core_over_numpy"] == pytest.approx(statistics.median(pairwise), rel=1e-12)
    threads = [many / one for many, one in zip(runs["core"]["runs"], runs["core_1thread"]["runs"])]
    assert report["threads_speedup"] == pytest.approx(statistics.median(threads), rel=1e-12)
    assert report["core_steps_per_s"] == pytest.approx(statistics.median(runs["core"]["runs"]), rel=1e-12)
    projected = 1e8 * report["steps_per_customer"] / report["core_steps_per_s"]
    assert report["projected_seconds_1e7_customers_120_months_10_replications"] == pytest.approx(projected)
    table = bench.format_table(report)
    assert f"{report['core_steps_per_s'] / 1e6:,.2f}" in table
    # the bound: the core's parts alone on one thread, and the core's share of it
    bounds = report["core_bounds_1thread"]
    assert (
        0 < bounds["combined_steps_per_s"] <= min(bounds["arithmetic_steps_per_s"], bounds["rng_steps_per_s"])
    )
    assert report["core_share_of_bound"] == pytest.approx(
        report["core_1thread_steps_per_s"] / bounds["combined_steps_per_s"], rel=1e-12
    )
    assert report["svml"]["kernel_calls_libm_exp"] is False
    assert "bound, 1 thread" in table
