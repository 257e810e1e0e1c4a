"""sim.data.split_transactions: the per-customer summary, the panel and the tracking data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.data import (
    CDNOW_CALIBRATION_END,
    CDNOW_HOLDOUT_END,
    CDNOW_SAMPLE_PATH,
    CustomerData,
    read_transactions,
    split_transactions,
)
from sim.exceptions import DataError

# A tiny log, computed by hand below. Calibration to Sunday 2024-01-28 (4 weeks from
# Monday 1 January), holdout to 2024-02-25 (4 more weeks).
#   A: first 1 Jan; repeats 8 Jan (7) and 15 Jan (two rows, 10 + 5); holdout 5 Feb
#   B: first 3 Jan only
#   C: first 10 Jan; repeat 24 Jan (20); holdout 1 Feb and 20 Feb
#   D: first 1 Feb: after the calibration end, not in the cohort
#   E: first 1 Jan; repeats every day 2..9 Jan (8 repeats, 1 each)
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


@pytest.fixture()
def tiny(tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_text(TINY)
    return split_transactions(path, "2024-01-28", "2024-02-25", unit="week")


def test_tiny_summary_by_hand(tiny):
    s = tiny.summary.set_index("customer_id")
    assert list(s.index) == ["A", "B", "C", "E"]  # D joined after the calibration end
    assert tiny.late_customers == 1 and any(
        "1 customers made their first purchase after" in n for n in tiny.notes
    )
    assert any("1 rows of the log were same-day purchases" in n for n in tiny.notes)
    assert s["frequency"].tolist() == [2, 0, 1, 8]
    assert s["recency"].tolist() == pytest.approx([14 / 7, 0.0, 14 / 7, 8 / 7])
    assert s["T"].tolist() == pytest.approx([27 / 7, 25 / 7, 18 / 7, 27 / 7])
    # mean of the REPEAT transactions: A (7 + 15) / 2, C 20, E 1; NaN without repeats
    assert s.loc["A", "monetary"] == pytest.approx(11.0)
    assert np.isnan(s.loc["B", "monetary"])
    assert s.loc["C", "monetary"] == pytest.approx(20.0) and s.loc["E", "monetary"] == pytest.approx(1.0)
    assert s["holdout_frequency"].tolist() == [1, 0, 2, 0]
    assert s.loc["A", "holdout_monetary"] == pytest.approx(9.0) and s.loc[
        "C", "holdout_monetary"
    ] == pytest.approx(2.0)
    assert np.isnan(s.loc["B", "holdout_monetary"])
    assert tiny.holdout_length == pytest.approx(4.0)
    assert s["first_purchase"].dt.strftime("%m-%d").tolist() == ["01-01", "01-03", "01-10", "01-01"]


def test_tiny_tracking_and_panel_by_hand(tiny):
    tracking = tiny.tracking_actual()
    # weeks start on Monday 1 January; the 4th ends on the calibration end, 28 January
    assert tracking["period_end"].dt.strftime("%m-%d").tolist() == [
        "01-07",
        "01-14",
        "01-21",
        "01-28",
        "02-04",
        "02-11",
        "02-18",
        "02-25",
    ]
    assert tracking["holdout"].tolist() == [False] * 4 + [True] * 4
    # repeat transactions per week: E's six (2..7 Jan); A 8 Jan + E 8, 9 Jan; A 15 Jan; C 24 Jan;
    # C 1 Feb; A 5 Feb; none; C 20 Feb
    assert tracking["repeat_transactions"].tolist() == [6, 3, 1, 1, 1, 1, 0, 1]
    assert tracking["cumulative"].tolist() == [6, 9, 10, 11, 12, 13, 13, 14]
    # a customer acquired at s is (period end - s) old at a period's end; at the calibration end that is T
    ages = tiny.period_end_times[3] - tiny.acquisition_times
    assert ages == pytest.approx(tiny.T)

    panel = tiny.panel
    assert panel.counts.dtype == np.int32 and panel.counts.shape == (4, 8)
    assert panel.n_calibration_periods == 4
    assert panel.entry_period.tolist() == [0, 0, 1, 0]
    assert panel.counts.tolist() == [
        [1, 1, 1, 0, 0, 1, 0, 0],  # A (two rows on 15 Jan are one transaction)
        [1, 0, 0, 0, 0, 0, 0, 0],  # B
        [0, 1, 0, 1, 1, 0, 0, 1],  # C
        [7, 2, 0, 0, 0, 0, 0, 0],  # E
    ]
    assert panel.amounts[0].tolist() == [30, 7, 15, 0, 0, 9, 0, 0]
    assert panel.period_start[0] == pd.Timestamp("2024-01-01") and panel.period_end[-1] == pd.Timestamp(
        "2024-02-25"
    )


def test_calibration_groups_merge_identical_sequences():
    # customers 0, 2 and 4 share (entry 0, [1, 0, 2]); 1 and 3 share (entry 1, [0, 1, 0]); 5 is alone
    from sim.data import PurchasePanel

    counts = np.array(
        [[1, 0, 2, 5], [0, 1, 0, 0], [1, 0, 2, 0], [0, 1, 0, 3], [1, 0, 2, 1], [1, 0, 0, 0]], dtype=np.int32
    )
    panel = PurchasePanel(
        customer_id=np.arange(6),
        counts=counts,
        amounts=None,
        entry_period=np.array([0, 1, 0, 1, 0, 0], dtype=np.int32),
        n_calibration_periods=3,
        period_start=pd.DatetimeIndex([]),
        period_end=pd.DatetimeIndex([]),
        unit="week",
    )
    groups = panel.calibration_groups()
    assert groups.n_groups == 3
    assert groups.multiplicity.tolist() == [3, 2, 1]
    assert groups.group_of_customer.tolist() == [0, 1, 0, 1, 0, 2]
    assert groups.counts.tolist() == [[1, 0, 2], [0, 1, 0], [1, 0, 0]]
    assert groups.entry_period.tolist() == [0, 1, 0]
    # the holdout column (5, 0, 3, 1) does not split groups; every customer maps back to her own row
    assert (groups.counts[groups.group_of_customer] == counts[:, :3]).all()


@pytest.fixture(scope="module")
def cdnow():
    return split_transactions(
        read_transactions(CDNOW_SAMPLE_PATH), CDNOW_CALIBRATION_END, CDNOW_HOLDOUT_END, unit="week"
    )


def test_cdnow_summary_follows_the_published_conventions(cdnow):
    s = cdnow.summary
    assert cdnow.n_customers == 2357 and cdnow.late_customers == 0
    # customer 1 (Fader, Hardie & Lee 2005; lifetimes' cdnow summary): x = 2, t_x = 30.43, T = 38.86,
    # mean repeat spend (29.73 + 14.96) / 2 = 22.345
    first = s.iloc[0]
    assert (first["customer_id"], first["frequency"]) == ("1", 2)  # ids from a CSV are text
    assert round(first["recency"], 2) == 30.43 and round(first["T"], 2) == 38.86
    assert first["monetary"] == pytest.approx(22.345)
    # 946 customers repeat in the calibration period (the Gamma-Gamma sample); 2,457 repeat
    # transactions in the calibration period, 1,882 in the holdout
    assert int((s["frequency"] > 0).sum()) == 946
    assert int(s["frequency"].sum()) == 2457 and int(s["holdout_frequency"].sum()) == 1882
    assert cdnow.holdout_length == pytest.approx(39.0)
    # the cohort was acquired in the first quarter of 1997
    assert s["first_purchase"].min() == pd.Timestamp("1997-01-01") and s[
        "first_purchase"
    ].max() <= pd.Timestamp("1997-03-31")
    assert s["T"].min() == pytest.approx((pd.Timestamp("1997-09-30") - s["first_purchase"].max()).days / 7)


def test_cdnow_panel_and_tracking_agree_with_the_summary(cdnow):
    panel = cdnow.panel
    assert panel.counts.shape == (2357, 78) and panel.n_calibration_periods == 39
    calibration = panel.counts[:, :39].sum(axis=1)
    holdout = panel.counts[:, 39:].sum(axis=1)
    assert (calibration - 1 == cdnow.summary["frequency"].to_numpy()).all()
    assert (holdout == cdnow.summary["holdout_frequency"].to_numpy()).all()
    assert panel.amounts.sum() == pytest.approx(read_transactions(CDNOW_SAMPLE_PATH)["amount"].sum())
    tracking = cdnow.tracking_actual()
    assert tracking["cumulative"].iloc[38] == 2457 and tracking["cumulative"].iloc[-1] == 2457 + 1882
    groups = panel.calibration_groups()
    assert groups.multiplicity.sum() == 2357 and groups.n_groups < 2357
    assert (groups.counts[groups.group_of_customer] == panel.counts[:, :39]).all()
    assert (groups.entry_period[groups.group_of_customer] == panel.entry_period).all()


def test_month_unit_and_no_holdout(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "customer_id,date\nA,2024-01-01\nA,2024-03-01\nB,2024-02-01\nB,2024-02-15\nA,2024-06-01\n"
    )
    data = split_transactions(path, "2024-04-30", unit="month", amount_column=None)
    month = 365.25 / 12
    s = data.summary
    assert s["recency"].tolist() == pytest.approx([60 / month, 14 / month])
    assert s["T"].tolist() == pytest.approx([120 / month, 89 / month])
    assert "holdout_frequency" not in s.columns and data.holdout_length is None and not data.has_holdout
    assert np.isnan(s["monetary"]).all() and not data.has_amount
    # periods of 30.4375 days ending with the calibration end day
    assert data.period_last_days()[-1] == np.datetime64("2024-04-30", "D").astype(np.int64)
    assert data.n_calibration_periods == 4
    with pytest.raises(DataError, match="no holdout period"):
        _ = data.holdout_frequency


def test_from_summary_checks_its_columns():
    good = pd.DataFrame({"frequency": [0, 2], "recency": [0.0, 3.0], "T": [5.0, 5.0]})
    data = CustomerData.from_summary(good, holdout_length=10)
    assert data.customer_id.tolist() == [1, 2] and not data.has_period_grid
    with pytest.raises(DataError, match="needs the transaction log"):
        _ = data.panel
    with pytest.raises(DataError, match=r"row 2: recency = 6.0 must be between 0 and T"):
        CustomerData.from_summary(good.assign(recency=[0.0, 6.0]))
    with pytest.raises(DataError, match="no column"):
        CustomerData.from_summary(good.drop(columns="T"))
    with pytest.raises(DataError, match="nobody repeats"):
        CustomerData.from_summary(good.assign(frequency=[0, 0], recency=[0.0, 0.0]))
