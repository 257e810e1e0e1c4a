"""sim.fitting.evaluation.fit_transactions: the tables, on a tiny hand-computed log and on CDNOW."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.data import CDNOW_CALIBRATION_END, CDNOW_HOLDOUT_END, load_cdnow_sample
from sim.fitting.evaluation import fit_transactions

# Calibration to 2024-01-28 (4 weeks from Monday 1 January), holdout to 2024-02-25 (4 weeks).
#   A: first 1 Jan; repeats 8 Jan, 15 Jan (two rows: one transaction); holdout 5 Feb
#      -> x=2, t_x=2, T=27/7, holdout 1
#   B: first 3 Jan only                                     -> x=0, t_x=0, T=25/7, holdout 0
#   C: first 10 Jan; repeat 24 Jan; holdout 1 Feb, 20 Feb   -> x=1, t_x=2, T=18/7, holdout 2
#   D: first 1 Feb (after the calibration end): not in the cohort
#   E: first 1 Jan; repeats 2..9 Jan                        -> x=8, t_x=8/7, T=27/7, holdout 0
TINY = """customer_id,date,amount
A,2024-01-01,30
A,2024-01-08,7
A,2024-01-15,10
A,2024-01-15,5
A,2024-02-05,9
B,2024-01-03,12
C,2024-01-10,40
C,2024-01-24,20
C,2024-02-01,1
C,2024-02-20,3
D,2024-02-01,50
""" + "".join(f"E,2024-01-{day:02d},1\n" for day in range(1, 10))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.csv"
    path.write_text(TINY)
    return fit_transactions(path, "2024-01-28", "2024-02-25", unit="week", models=("bgnbd", "pnbd", "ggamma"))


def test_tiny_customers_table_by_hand(tiny):
    c = tiny.customers.set_index("customer_id")
    assert list(c.index) == ["A", "B", "C", "E"]
    assert c["frequency"].tolist() == [2, 0, 1, 8]
    assert c["recency"].tolist() == pytest.approx([2.0, 0.0, 2.0, 8 / 7])
    assert c["T"].tolist() == pytest.approx([27 / 7, 25 / 7, 18 / 7, 27 / 7])
    assert c["holdout_frequency"].tolist() == [1, 0, 2, 0]
    assert c["monetary"].iloc[[0, 2, 3]].tolist() == pytest.approx([11.0, 20.0, 1.0]) and np.isnan(
        c.loc["B", "monetary"]
    )
    for model in ("bgnbd", "pnbd"):
        fit = tiny.fits[model]
        assert c[f"expected_{model}"].to_numpy() == pytest.approx(
            fit.expected_holdout_transactions(tiny.data)
        )
        assert c[f"p_alive_{model}"].to_numpy() == pytest.approx(fit.p_alive(tiny.data))
    # (NaN for B when the tiny fit has q <= 1: the population mean spend is then infinite)
    assert c["expected_spend_ggamma"].to_numpy() == pytest.approx(
        tiny.fits["ggamma"].expected_spend(tiny.data), nan_ok=True
    )
    assert c.loc["B", "p_alive_bgnbd"] == 1.0
    assert any("1 customers made their first purchase after" in note for note in tiny.notes)
    assert any("1 rows of the log were same-day purchases" in note for note in tiny.notes)


def test_tiny_by_frequency_rows_by_hand(tiny):
    table = tiny.by_frequency
    assert table["frequency"].tolist() == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert table["customers"].tolist() == [1, 1, 1, 0, 0, 0, 0, 1]  # B; C; A; E (x = 8)
    actual = table["actual"].tolist()
    assert actual[:3] == [0.0, 2.0, 1.0] and actual[7] == 0.0 and all(np.isnan(actual[3:7]))
    c = tiny.customers.set_index("customer_id")
    assert table.loc[table["frequency"] == "7+", "expected_pnbd"].item() == pytest.approx(
        c.loc["E", "expected_pnbd"]
    )


def test_tiny_evaluation_and_tracking_by_hand(tiny):
    c = tiny.customers
    actual = np.array([1.0, 0.0, 2.0, 0.0])
    tracking = tiny.tracking
    # cumulative repeat transactions per week, by hand: 6, 9, 10, 11 | 12, 13, 13, 14
    assert tracking["actual"].tolist() == [6, 9, 10, 11, 12, 13, 13, 14]
    assert tracking["holdout"].tolist() == [False] * 4 + [True] * 4
    for model in ("bgnbd", "pnbd"):
        row = tiny.evaluation.set_index("model").loc[model]
        expected = c[f"expected_{model}"].to_numpy()
        assert row["customers"] == 4 and row["actual_total"] == 3.0
        assert row["expected_total"] == pytest.approx(expected.sum())
        assert row["mae"] == pytest.approx(np.mean(np.abs(expected - actual)))
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean((expected - actual) ** 2)))
        assert row["corr"] == pytest.approx(np.corrcoef(expected, actual)[0, 1])
        holdout = tracking[tracking["holdout"]]
        mape = np.mean(np.abs(holdout[f"expected_{model}"] - holdout["actual"]) / holdout["actual"]) * 100
        assert row["tracking_mape"] == pytest.approx(mape)
        # expected cumulative: at the calibration end every customer is T old
        fit = tiny.fits[model]
        assert tracking[f"expected_{model}"].iloc[3] == pytest.approx(
            fit.expected_unconditional(tiny.data.T).sum()
        )
    assert tiny.fit["model"].tolist() == ["bgnbd", "pnbd", "ggamma"]
    assert tiny.fit.loc[2, "customers"] == 3  # the Gamma-Gamma uses the 3 repeat buyers
    assert tiny.parameters.columns.tolist() == ["model", "parameter", "estimate", "se"]
    assert len(tiny.parameters) == 4 + 4 + 3


def test_without_holdout_and_without_amounts(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "\n".join(
            ["customer_id,date"]
            + [line.split(",")[0] + "," + line.split(",")[1] for line in TINY.splitlines()[1:]]
        )
    )
    result = fit_transactions(path, "2024-01-28", models=("bgnbd", "ggamma"), amount_column=None)
    assert result.evaluation is None and result.by_frequency is None
    assert (
        "holdout_frequency" not in result.customers.columns
        and "expected_bgnbd" not in result.customers.columns
    )
    assert "p_alive_bgnbd" in result.customers.columns
    assert list(result.fits) == ["bgnbd"]
    assert any(
        "ggamma (Gamma-Gamma) was not fitted: the log has no transaction amounts" in n for n in result.notes
    )
    assert result.tracking["holdout"].sum() == 0 and len(result.tracking) == 4


@pytest.fixture(scope="module")
def cdnow():
    return fit_transactions(load_cdnow_sample(), CDNOW_CALIBRATION_END, CDNOW_HOLDOUT_END, unit="week")


def test_cdnow_tables(cdnow):
    assert set(cdnow.tables()) == {"parameters", "fit", "customers", "evaluation", "by_frequency", "tracking"}
    assert cdnow.fit[["model", "n_parameters", "customers"]].values.tolist() == [
        ["bgnbd", 4, 2357],
        ["pnbd", 4, 2357],
        ["ggamma", 3, 946],
    ]
    assert cdnow.fit["converged"].all()
    fit = cdnow.fit.set_index("model")
    assert fit.loc["bgnbd", "aic"] == pytest.approx(2 * 4 + 2 * 9582.4292, abs=0.02)
    assert fit.loc["bgnbd", "bic"] == pytest.approx(4 * np.log(2357) + 2 * 9582.4292, abs=0.02)
    # the conditional-expectation table of FHL (2005a), figure 4: group sizes and actual means
    by = cdnow.by_frequency
    assert by["customers"].tolist() == [1411, 439, 214, 100, 62, 38, 29, 64]
    assert (by["customers"] * by["actual"]).sum() == pytest.approx(1882)
    evaluation = cdnow.evaluation.set_index("model")
    assert evaluation["actual_total"].tolist() == [1882.0, 1882.0]
    # both models track the cohort's cumulative repeat transactions to within a few percent
    assert (evaluation["tracking_mape"] < 5).all()
    tracking = cdnow.tracking
    assert len(tracking) == 78 and tracking["actual"].iloc[38] == 2457 and tracking["actual"].iloc[-1] == 4339
    assert tracking["period_end"].iloc[38] == pd.Timestamp("1997-09-30")


def test_fit_transactions_on_summarised_data_and_its_arguments():
    from sim.data import CustomerData
    from sim.exceptions import DataError

    summary = pd.DataFrame(
        {
            "frequency": [0, 1, 2, 0, 3, 1] * 50,
            "recency": [0.0, 2.0, 5.0, 0.0, 9.0, 1.0] * 50,
            "T": [10.0, 10.0, 12.0, 8.0, 12.0, 3.0] * 50,
            "holdout_frequency": [0, 1, 1, 0, 2, 0] * 50,
        }
    )
    data = CustomerData.from_summary(summary, holdout_length=10.0)
    result = fit_transactions(data, models=("pnbd",), fit_options={"pnbd": {"start": {"r": 0.5}}})
    # no transaction log: no tracking table, and the tracking error is unknown
    assert result.tracking is None and np.isnan(result.evaluation["tracking_mape"].item())
    assert result.by_frequency["customers"].tolist() == [100, 100, 50, 50, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        fit_transactions(data, models=("nope",))
    with pytest.raises(ValueError, match="fit_options for model"):
        fit_transactions(data, models=("pnbd",), fit_options={"bgnbd": {}})
    with pytest.raises(DataError, match="calibration_end is required"):
        fit_transactions(load_cdnow_sample())
