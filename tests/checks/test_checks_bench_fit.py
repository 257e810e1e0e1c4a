"""The fit benchmark (``sim bench --fit``) measures like with like and reports honestly.

No speed is asserted (the numbers live in ``results/benchmarks/fit-*.json``): these tests run
the quick benchmark at a tiny size and check the report's structure, that every timed phase
of a case covers the same customers, and that the table says what the report holds.
"""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

from sim.checks import bench_fit
from sim.cli.main import main
from sim.data import read_transactions, split_transactions

TINY = {
    "cdnow_copies": 1,
    "cdnow_size_customers": 1500,
    "synthetic_customers": 3000,
    "repeats": 2,
    "large_repeats": 1,
}


@pytest.fixture(scope="module")
def report():
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(bench_fit.FIT_SIZES, "quick", TINY)
        return bench_fit.run_fit_benchmark(True)


def test_report_structure(report):
    assert report["kind"] == "fit_benchmark" and report["quick"] is True
    assert report["phases"] == list(bench_fit.PHASES)
    for key in ("cpu", "cores"):
        assert report["machine"][key]
    assert set(report["against_targets"]) == {
        "large_total_under_60s",
        "large_peak_under_2GB",
        "cdnow_size_pnbd_under_1s",
    }
    small, medium, large = report["cases"]
    assert (small["name"], medium["name"], large["name"]) == ("cdnow_x1", "synthetic_1500", "synthetic_3000")
    assert (small["repeats"], medium["repeats"], large["repeats"]) == (2, 2, 1)
    for case in report["cases"]:
        for phase in bench_fit.PHASES:
            runs = case["phases"][phase]["runs_s"]
            assert len(runs) == case["repeats"] and all(value > 0 for value in runs)
            assert case["phases"][phase]["median_s"] == pytest.approx(statistics.median(runs), rel=1e-12)
            assert case["rss_after_phase_bytes"][phase] > 0
        totals = [
            sum(case["phases"][phase]["runs_s"][i] for phase in bench_fit.PHASES)
            for i in range(case["repeats"])
        ]
        assert case["total_runs_s"] == pytest.approx(totals, rel=1e-12)
        assert case["peak_rss_bytes"] == max(case["rss_after_phase_bytes"].values())
        assert all(fit["converged"] for fit in case["fits"].values())
    json.dumps(report)  # serialisable as written


def test_every_phase_covers_the_same_customers(report):
    small, medium, large = report["cases"]
    assert (
        small["customers"] == 2357
        and small["log"]["rows_read"] == 6919
        and small["log"]["rows_merged"] == 223
    )
    assert (medium["customers"], large["customers"]) == (1500, 3000)
    for case in report["cases"]:
        coverage = case["coverage"]
        assert case["coverage_same_in_every_run"]
        n = coverage["read"]
        assert coverage["summarised"] == n and coverage["late"] == 0
        assert coverage["fitted"]["bgnbd"] == coverage["fitted"]["pnbd"] == n
        assert coverage["fitted"]["ggamma"] == coverage["repeat_buyers"] > 0  # the spend model: repeat buyers
        assert set(coverage["predicted"].values()) == {n}


def test_synthetic_log_is_a_cdnow_like_cohort():
    log = bench_fit.synthetic_log(5000, seed=3)
    assert log["customer_id"].nunique() == 5000
    assert log["date"].min() >= np.datetime64("1997-01-01") and log["date"].max() <= np.datetime64(
        "1998-06-30"
    )
    assert (log["amount"] > 0).all() and log["date"].is_monotonic_increasing
    first = log.groupby("customer_id")["date"].min()
    assert first.max() < np.datetime64("1997-04-01")  # acquired in the first quarter: all in the cohort
    data = split_transactions(read_transactions(log), **bench_fit.SPLIT)
    assert data.n_customers == 5000 and data.late_customers == 0
    assert bench_fit.synthetic_log(50, seed=3).equals(bench_fit.synthetic_log(50, seed=3))


def test_table_and_files(report, tmp_path, monkeypatch):
    table = bench_fit.format_fit_table(report)
    assert table.startswith("| phase (median wall time, peak memory) | cdnow_x1 (2,357 customers)")
    assert "**whole path**" in table and "load average before" in table and "For scale" in table
    for case in report["cases"]:
        assert f"**{case['total_median_s']:.2f} s**" in table
    monkeypatch.chdir(tmp_path)
    written = bench_fit.write_fit_report(report, tmp_path / "extra.json")
    assert [path.name for path in written] == [
        f"fit-{report['created'][:10]}.json",
        "fit-latest.json",
        "extra.json",
    ]
    assert json.loads((tmp_path / "results" / "benchmarks" / "fit-latest.json").read_text())["cases"]


def test_sim_bench_fit_runs_only_the_fit_benchmark(tmp_path, monkeypatch, capsys):
    calls = []

    def fake(quick, *, repeats=None, log=None, lifecycle=False):
        calls.append((quick, repeats, lifecycle))
        return {"created": "2026-01-01T00:00:00+00:00", "cases": []}

    monkeypatch.setattr(bench_fit, "run_fit_benchmark", fake)
    monkeypatch.setattr(bench_fit, "format_fit_table", lambda report: "TABLE")
    monkeypatch.setattr(
        "sim.checks.bench.run_benchmarks", lambda *a, **k: pytest.fail("ran the engine benchmark")
    )
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--fit", "--quick", "--repeats", "2"]) == 0
    assert calls == [(True, 2, False)]
    printed = capsys.readouterr().out
    assert "TABLE" in printed and "fit-latest.json" in printed
    assert (tmp_path / "results" / "benchmarks" / "fit-2026-01-01.json").is_file()
    assert main(["bench", "--fit", "--lifecycle", "--quick"]) == 0
    assert calls[-1] == (True, None, True)


def test_sim_bench_lifecycle_without_fit_is_refused(capsys, monkeypatch):
    monkeypatch.setattr(
        "sim.checks.bench.run_benchmarks", lambda *a, **k: pytest.fail("ran the engine benchmark")
    )
    assert main(["bench", "--lifecycle"]) == 2
    error = capsys.readouterr().err
    assert "--lifecycle" in error and "--fit" in error and "Traceback" not in error
