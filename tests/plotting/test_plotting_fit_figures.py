"""The CDNOW figures of ``sim figures`` (12-14) and the ``sim fit`` plots draw exactly the
tables of :func:`sim.fit_transactions` (and, for 14, of :mod:`sim.fitting.bridge`).

One ``sim figures --quick --only cdnow_tracking,cdnow_conditional,cdnow_lifecycle`` run (through the CLI);
each figure's CSV is then compared with the tables recomputed here through
``sim.fit_transactions`` on the bundled sample (exact, through the CSV round trip of floats).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

import sim
from sim.cli.main import main
from sim.exceptions import ConfigError
from sim.plotting import gallery
from sim.plotting.fitting import fit_figure, plot_conditional_expectations, plot_p_alive, plot_tracking

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "experiments" / "figures"
NAMES = ("cdnow_tracking", "cdnow_conditional", "cdnow_lifecycle")


@pytest.fixture(scope="module")
def figures_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit_figures")
    arguments = [
        "figures",
        "--quick",
        "--only",
        ",".join(NAMES),
        "--out",
        str(out),
        "--configs",
        str(CONFIGS),
    ]
    assert main(arguments) == 0
    return out


@pytest.fixture(scope="module")
def fit(figures_run):
    """The fit the figures drew (``sim.fit_transactions`` on the sample, the quick lifecycle
    candidates), from the gallery's cache: fitting the lifecycle model again would double the
    cost; the split and the counts are checked against the data below.
    """
    return gallery.fits.transaction_fit(
        "cdnow_sample",
        sim.data.CDNOW_CALIBRATION_END,
        sim.data.CDNOW_HOLDOUT_END,
        sim.data.CDNOW_UNIT,
        ("lifecycle", "bgnbd", "pnbd"),
        True,
    )


def _round_trip(table: pd.DataFrame) -> pd.DataFrame:
    """A table as it reads back from CSV (what the figure's CSV holds)."""
    return pd.read_csv(io.StringIO(table.to_csv(index=False)))


def test_the_figures_are_made_with_their_files(figures_run):
    manifest = json.loads((figures_run / "manifest.json").read_text())
    entries = {entry["name"]: entry for entry in manifest["figures"]}
    for number, name in zip((12, 13, 14), NAMES):
        entry = entries[name]
        assert entry["number"] == number and entry["status"] == "ok" and entry["kind"] == name
        assert entry["sizes"]["customers"] == 2357
        for suffix in ("png", "svg", "csv", "txt"):
            assert (figures_run / f"{name}.{suffix}").is_file()
        caption = (figures_run / f"{name}.txt").read_text()
        assert "{" not in caption and "2,357 customers" in caption


def test_tracking_csv_is_the_tracking_table(figures_run, fit):
    csv = pd.read_csv(figures_run / "cdnow_tracking.csv")
    assert list(csv.columns) == [
        "panel",
        "period",
        "period_end",
        "holdout",
        "actual",
        "expected_lifecycle",
        "expected_bgnbd",
        "expected_pnbd",
    ]
    cumulative = csv[csv["panel"] == "cumulative"].drop(columns="panel").reset_index(drop=True)
    pd.testing.assert_frame_equal(cumulative, _round_trip(fit.tracking), check_exact=True)
    # 78 weeks, 39 of calibration; the cohort's 1,882 holdout repeat transactions
    assert len(cumulative) == 78 and int((~cumulative["holdout"]).sum()) == 39
    assert cumulative["actual"].iloc[-1] - cumulative["actual"].iloc[38] == 1882
    incremental = csv[csv["panel"] == "incremental"].drop(columns="panel").reset_index(drop=True)
    for column in ("actual", "expected_lifecycle", "expected_bgnbd", "expected_pnbd"):
        np.testing.assert_allclose(
            incremental[column].cumsum(), cumulative[column], rtol=1e-12, atol=1e-9, err_msg=column
        )
    np.testing.assert_array_equal(
        incremental["actual"], fit.data.tracking_actual()["repeat_transactions"].to_numpy(dtype=float)
    )


def test_conditional_csv_is_the_by_frequency_table(figures_run, fit):
    csv = pd.read_csv(figures_run / "cdnow_conditional.csv", dtype={"frequency": str})
    expected = _round_trip(fit.by_frequency)
    expected["frequency"] = expected["frequency"].astype(str)
    pd.testing.assert_frame_equal(csv, expected, check_exact=True)
    assert csv["frequency"].tolist() == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert csv["customers"].sum() == 2357
    # the group means are the customers table's, by calibration repeat count
    customers = fit.customers
    zero = customers[customers["frequency"] == 0]
    assert csv.loc[0, "actual"] == pytest.approx(zero["holdout_frequency"].mean(), rel=1e-12)
    assert csv.loc[0, "expected_pnbd"] == pytest.approx(zero["expected_pnbd"].mean(), rel=1e-12)


def test_lifecycle_figure_csv_is_the_fit_and_the_fitted_base(figures_run, fit):
    csv = pd.read_csv(figures_run / "cdnow_lifecycle.csv")
    assert set(csv["panel"]) == {"occupancy", "margin", "comparison"}
    occupancy = csv[csv["panel"] == "occupancy"].dropna(axis=1, how="all").drop(columns="panel")
    expected = _round_trip(fit.stage_occupancy.drop(columns="model"))
    pd.testing.assert_frame_equal(
        occupancy.reset_index(drop=True), expected, check_exact=False, check_dtype=False, rtol=1e-12
    )
    spec = gallery.load_figure_spec(CONFIGS / "cdnow_lifecycle.toml")
    params, sizes = spec.parameters(quick=True), spec.sizes(quick=True)
    base = sim.fitted_customer_base(
        fit.fits["lifecycle"], fit.data, margin=params.margin, seed=params.seed, horizon=sizes["horizon"]
    )
    margin = csv[csv["panel"] == "margin"]
    assert set(margin["policy"]) == set(base.config.policy_names)
    for _, rows in margin.groupby("policy"):
        np.testing.assert_allclose(rows["fitted_margin"], base.fitted_margin_by_period, rtol=1e-12)
    comparison = csv[csv["panel"] == "comparison"]
    assert set(comparison["reference"]) == {"none"} and len(comparison) == len(base.config.policies) - 1
    # the policy panels are the projection of that snapshot with the fitted config
    projection = sim.project_from(base.snapshot, base.config, replications=sizes["replications"])
    expected_margin = _round_trip(base.margin_table(projection))
    for column in ("simulated_margin", "fitted_margin"):
        np.testing.assert_allclose(margin[column], expected_margin[column], rtol=1e-12, err_msg=column)
    expected_comparison = _round_trip(projection.comparison)
    for column in ("delta_clv", "ci_low", "ci_high", "p_better"):
        np.testing.assert_allclose(
            comparison[column], expected_comparison[column], rtol=1e-12, err_msg=column
        )
    caption = (figures_run / "cdnow_lifecycle.txt").read_text()
    assert (
        fit.fits["lifecycle"].hmm.name in caption
        and f"{len(base.snapshot):,} customers drawn alive" in caption
    )


def test_caption_facts_are_the_fit(figures_run, fit):
    caption = (figures_run / "cdnow_tracking.txt").read_text()
    assert f"LL = {fit.fits['bgnbd'].loglik:,.2f}" in caption
    assert f"LL = {fit.fits['pnbd'].loglik:,.2f}" in caption
    assert "223 same-day rows" in caption and "6,919 rows" in caption


def test_plots_draw_the_table_columns(fit):
    import matplotlib.pyplot as plt

    ax = plot_tracking(fit.tracking)
    lines = ax.get_lines()
    np.testing.assert_array_equal(lines[0].get_ydata(), fit.tracking["actual"])
    for line, model in zip(lines[1:4], ("lifecycle", "bgnbd", "pnbd")):
        np.testing.assert_array_equal(line.get_ydata(), fit.tracking[f"expected_{model}"])
    assert lines[4].get_xdata()[0] == 39  # the split after week 39
    assert [text.get_text().strip() for text in ax.texts] == ["calibration", "holdout"]
    plt.close(ax.figure)
    ax = plot_conditional_expectations(fit.by_frequency)
    heights = [patch.get_height() for patch in ax.patches]
    expected = np.concatenate(
        [
            fit.by_frequency[c].to_numpy()
            for c in ("actual", "expected_lifecycle", "expected_bgnbd", "expected_pnbd")
        ]
    )
    np.testing.assert_array_equal(heights, expected)
    plt.close(ax.figure)
    ax = plot_p_alive(fit.customers, bins=10)
    heights = np.array([patch.get_height() for patch in ax.patches]).reshape(3, 10)
    np.testing.assert_allclose(heights.sum(axis=1), 1.0, rtol=1e-12)  # shares of customers per model
    for row, model in zip(heights, ("lifecycle", "bgnbd", "pnbd")):
        counts, _ = np.histogram(np.clip(fit.customers[f"p_alive_{model}"], 0, 1), bins=np.linspace(0, 1, 11))
        np.testing.assert_allclose(row, counts / len(fit.customers), rtol=1e-12, err_msg=model)
    plt.close(ax.figure)
    figure = fit_figure(fit)
    assert len(figure.axes) == 3
    plt.close(figure)


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data_figure.toml"
    path.write_text(text)
    return path


GOOD = """
[figure]
number = 1
kind = "cdnow_conditional"
title = "t"
caption = "c {customers} {bgnbd_mae:.2f}"
full = { customers = 2357 }
quick = { customers = 2357 }
"""


def test_a_data_figure_needs_no_experiment_and_refuses_one(tmp_path):
    spec = gallery.load_figure_spec(_write(tmp_path / "a", GOOD))
    assert spec.experiments == {} and spec.parameters().models == ("bgnbd", "pnbd")
    with pytest.raises(ConfigError, match="draws a bundled data set, not a simulation"):
        gallery.load_figure_spec(_write(tmp_path / "b", GOOD + '\n[experiment]\nbase = "../baseline.toml"\n'))
    with pytest.raises(ConfigError, match="models must be distinct transaction models"):
        gallery.load_figure_spec(
            _write(tmp_path / "c", GOOD.replace("[figure]\n", '[figure]\nparams = { models = ["ggamma"] }\n'))
        )
    with pytest.raises(ConfigError, match="must be a day YYYY-MM-DD"):
        gallery.load_figure_spec(
            _write(
                tmp_path / "d",
                GOOD.replace("[figure]\n", '[figure]\nparams = { holdout_end = "June 1998" }\n'),
            )
        )
    with pytest.raises(ConfigError, match=r"figure.caption: \{pnbd_loglik\}"):
        gallery.load_figure_spec(
            _write(
                tmp_path / "e",
                GOOD.replace('"c {customers}', '"c {pnbd_loglik}').replace(
                    "[figure]\n", '[figure]\nparams = { models = ["bgnbd"] }\n'
                ),
            )
        )


def test_a_data_figure_of_the_wrong_size_says_so(tmp_path, capsys):
    configs = tmp_path / "configs"
    _write(configs, GOOD.replace("quick = { customers = 2357 }", "quick = { customers = 100 }"))
    code = main(["figures", "--quick", "--configs", str(configs), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2 and "figure.quick.customers = 100, but the cdnow_sample cohort has 2,357" in error
    assert "Traceback" not in error
