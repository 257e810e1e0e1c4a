"""``sim fit``: the bundled CDNOW sample end to end, and one clear message per bad input.

Every bad input exits 2 with one message naming the option, column, line or value, no
traceback, and no output folder (nor ``results/`` for the default folder); a fit that does
not converge is reported, not an error (exit 0).
"""

from __future__ import annotations

import hashlib
import json
import os

import pandas as pd
import pytest

import sim
from sim.cli.fit import cli_message, parse_size
from sim.cli.main import main
from sim.data import CDNOW_SAMPLE_PATH

CAL, HOLD = "2024-01-20", "2024-02-10"
GOOD = (
    "customer_id,date,amount\n"
    "A,2024-01-01,10\nA,2024-01-15,5\nB,2024-01-02,3\nB,2024-01-12,4\nB,2024-02-02,3\nC,2024-01-05,1\n"
)


def _run(capsys, arguments):
    code = main(arguments)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# (case, log content: text, bytes or None for no file, extra arguments, fragments of the message)
BAD_INPUTS = [
    ("no file", None, [], ["log.csv: no such file"]),
    ("empty file", "", [], ["log.csv is empty (0 bytes)"]),
    ("header only", "customer_id,date,amount\n", [], ["has a header but no rows"]),
    (
        "missing column",
        "cust,date,amount\nA,2024-01-01,1\nB,2024-01-02,2\n",
        [],
        [
            "no column 'customer_id' for the customer",
            "columns found: 'cust', 'date', 'amount'",
            "--customer-column",
        ],
    ),
    (
        "unknown amount column",
        GOOD,
        ["--amount-column", "price"],
        ["no column 'price' for the amount", "--amount-column NAME (or --no-amount"],
    ),
    (
        "unknown customer column",
        GOOD,
        ["--customer-column", "client"],
        ["no column 'client' for the customer"],
    ),
    (
        "no amount column",
        "customer_id,date\nA,2024-01-01\nB,2024-01-02\n",
        [],
        ["no column 'amount' for the amount", "--no-amount"],
    ),
    (
        "unparsable date",
        "customer_id,date,amount\nA,2024-01-01,1\nB,yesterday,2\n",
        [],
        ["line 3: date = 'yesterday' cannot be read as a date", "--date-format"],
    ),
    (
        "impossible date",
        "customer_id,date,amount\nA,2024-01-01,1\nB,2024-02-30,2\n",
        [],
        ["line 3: date = '2024-02-30' is not a calendar date"],
    ),
    (
        "negative amount",
        "customer_id,date,amount\nA,2024-01-01,1\nB,2024-01-02,-4\n",
        [],
        ["line 3: amount = '-4' is negative"],
    ),
    (
        "non-numeric amount",
        "customer_id,date,amount\nA,2024-01-01,ten\nB,2024-01-02,4\n",
        [],
        ["line 2: amount = 'ten' is not a number", "--no-amount"],
    ),
    (
        "missing customer",
        "customer_id,date,amount\nA,2024-01-01,1\n,2024-01-02,2\n",
        [],
        ["line 3: customer_id is missing"],
    ),
    (
        "extra field",
        "customer_id,date,amount\nA,2024-01-01,1\nB,2024-01-02,2,9\n",
        [],
        ["not valid CSV", "Expected 3 fields in line 3, saw 4"],
    ),
    (
        "non-UTF-8 bytes",
        b"customer_id,date,amount\nA,2024-01-01,1\n\xe9B,2024-01-02,2\n",
        [],
        ["is not UTF-8 text: the byte at offset 39", "line 3", "0xe9"],
    ),
    (
        "single customer",
        "customer_id,date,amount\nA,2024-01-01,1\nA,2024-01-05,2\n",
        [],
        ["holds purchases of a single customer ('A'"],
    ),
    (
        "nobody repeats",
        "customer_id,date,amount\nA,2024-01-01,1\nB,2024-01-05,2\nC,2024-02-01,2\n",
        [],
        ["nobody of the 2 customers acquired by --calibration-end = 2024-01-20 makes a repeat purchase"],
    ),
    (
        "calibration end before the first purchase",
        GOOD,
        ["--calibration-end", "2023-06-30", "--holdout-end", "2023-07-31"],
        ["--calibration-end = 2023-06-30 is before the first purchase", "(2024-01-01)"],
    ),
    (
        "calibration end after the last purchase",
        GOOD,
        ["--calibration-end", "2025-01-01", "--holdout-end", "2025-02-01"],
        ["--calibration-end = 2025-01-01 is after the last purchase", "(2024-02-02)"],
    ),
    (
        "holdout end before calibration end",
        GOOD,
        ["--holdout-end", "2024-01-10"],
        ["--holdout-end 2024-01-10 is not after --calibration-end 2024-01-20"],
    ),
    (
        "calibration end not a date",
        GOOD,
        ["--calibration-end", "30/09/1997"],
        ["--calibration-end '30/09/1997' is not a date; give the day as YYYY-MM-DD"],
    ),
    (
        "calibration end impossible",
        GOOD,
        ["--calibration-end", "1997-02-30"],
        ["--calibration-end '1997-02-30' is not a calendar date"],
    ),
    ("unknown model", GOOD, ["--models", "bgnbd,hmm2"], ["--models: unknown model(s) 'hmm2'"]),
    (
        "scheduler without the Dask executor",
        GOOD,
        ["--scheduler", "tcp://127.0.0.1:8786"],
        ["--scheduler tcp://127.0.0.1:8786 needs --executor dask"],
    ),
    (
        "Dask executor without the lifecycle model",
        GOOD,
        ["--executor", "dask", "--models", "bgnbd,pnbd"],
        ["--executor dask runs the lifecycle model's E-steps", "add lifecycle to --models"],
    ),
    ("empty model name", GOOD, ["--models", "bgnbd,"], ["--models 'bgnbd,': an empty model name"]),
    (
        "file larger than --max-size",
        GOOD,
        ["--max-size", "64"],
        [f"is {len(GOOD)} bytes, above the limit of 64 bytes", "--max-size (e.g. --max-size 4G)"],
    ),
    (
        "too few repeat buyers for the Gamma-Gamma",
        "customer_id,date,amount\nA,2024-01-01,10\nA,2024-01-15,5\nB,2024-01-02,3\nC,2024-01-05,1\nC,2024-02-05,1\n",
        [],
        ["the Gamma-Gamma model needs at least two customers", "--models bgnbd,pnbd"],
    ),
]


@pytest.mark.parametrize("case, content, extra, fragments", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_message_exit_2_and_no_folder(tmp_path, capsys, case, content, extra, fragments):
    log = tmp_path / "log.csv"
    if content is not None:
        log.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    out = tmp_path / "out"
    arguments = ["fit", str(log), "--calibration-end", CAL, "--holdout-end", HOLD, "--out", str(out), *extra]
    code, printed, error = _run(capsys, arguments)
    assert code == 2, (printed, error)
    assert error.startswith("sim fit: ") and error.count("\n") == 1, error  # one message, one line
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    assert "Traceback" not in error + printed
    assert "_column" not in error and "max_bytes" not in error  # the options' names, not Python's
    assert not out.exists()


def test_bad_input_without_out_creates_no_results_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "log.csv"
    log.write_text("customer_id,date,amount\nA,2024-01-01,1\nB,2024-01-02,-4\n")
    code, _, error = _run(capsys, ["fit", str(log), "--calibration-end", CAL])
    assert code == 2 and "amount = '-4' is negative" in error
    assert not (tmp_path / "results").exists()


def test_a_file_above_the_default_limit_is_refused_from_its_size(tmp_path, capsys):
    """A sparse file of 2 GiB + 1 byte: refused before a byte is read (no memory, no time)."""
    log = tmp_path / "huge.csv"
    with open(log, "wb") as handle:
        handle.truncate(2 * 1024**3 + 1)
    out = tmp_path / "out"
    code, _, error = _run(capsys, ["fit", str(log), "--calibration-end", CAL, "--out", str(out)])
    assert code == 2
    assert "is 2.00 GiB (2,147,483,649 bytes), above the limit of 2.00 GiB" in error
    assert "--max-size" in error and "Traceback" not in error
    assert not out.exists()


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (["--calibration-end", CAL, "--unit", "year"], "invalid choice: 'year'"),
        ([], "the following arguments are required: --calibration-end"),
        (["--calibration-end", CAL, "--max-size", "lots"], "'lots' is not a size"),
        (["--calibration-end", CAL, "--amount-column", "a", "--no-amount"], "not allowed with argument"),
    ],
)
def test_malformed_arguments_exit_2_through_argparse(tmp_path, capsys, arguments, fragment):
    log = tmp_path / "log.csv"
    log.write_text(GOOD)
    with pytest.raises(SystemExit) as stop:
        main(["fit", str(log), "--out", str(tmp_path / "out"), *arguments])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert fragment in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- output folder rules


def test_out_rules(tmp_path, capsys, home):
    log = tmp_path / "log.csv"
    log.write_text(GOOD)
    base = ["fit", str(log), "--calibration-end", CAL, "--models", "bgnbd,pnbd"]
    # a file where the folder would go
    (tmp_path / "taken").write_text("x")
    code, _, error = _run(capsys, base + ["--out", str(tmp_path / "taken")])
    assert code == 2 and "exists and is not a folder" in error
    # the home folder, even with --force
    code, _, error = _run(capsys, base + ["--out", str(home), "--force"])
    assert code == 2 and "refusing to write results into" in error
    # someone else's folder of tables: refused, and --force never overwrites their CSV
    other = tmp_path / "other"
    other.mkdir()
    (other / "fit.csv").write_text("theirs\n")
    code, _, error = _run(capsys, base + ["--out", str(other)])
    assert code == 2 and "not a sim result folder" in error
    code, _, error = _run(capsys, base + ["--out", str(other), "--force"])
    assert code == 2 and "--force never replaces other files" in error
    assert (other / "fit.csv").read_text() == "theirs\n" and sorted(p.name for p in other.iterdir()) == [
        "fit.csv"
    ]
    assert "Traceback" not in error


def test_a_complete_result_is_replaced_only_with_force(tmp_path, capsys):
    out = tmp_path / "out"
    arguments = [
        "fit",
        str(CDNOW_SAMPLE_PATH),
        "--calibration-end",
        "1997-09-30",
        "--out",
        str(out),
        "--no-figure",
    ]
    assert main(arguments) == 0
    first = (out / "manifest.json").read_bytes()
    capsys.readouterr()
    code, _, error = _run(capsys, arguments)
    assert code == 2 and "already holds a complete result" in error and "--force" in error
    assert (out / "manifest.json").read_bytes() == first  # untouched
    assert main(arguments + ["--force"]) == 0
    assert json.loads((out / "manifest.json").read_text())["complete"] is True
    assert not (out / "evaluation.csv").exists()  # no holdout: no evaluation table


# ----------------------------------------------------------------------------- the bundled sample


@pytest.fixture(scope="module")
def cdnow_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "cdnow"
    arguments = [
        "fit",
        str(CDNOW_SAMPLE_PATH),
        "--calibration-end",
        "1997-09-30",
        "--holdout-end",
        "1998-06-30",
        "--out",
        str(out),
    ]
    with pytest.MonkeyPatch.context():
        import contextlib
        import io

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = main(arguments)
    assert code == 0
    return out, printed.getvalue()


def test_cdnow_files_tables_and_figures(cdnow_run):
    out, printed = cdnow_run
    names = sorted(path.name for path in out.iterdir() if not path.name.startswith("."))
    assert names == sorted(
        [
            "parameters.csv",
            "fit.csv",
            "customers.csv",
            "evaluation.csv",
            "by_frequency.csv",
            "tracking.csv",
            "tracking.png",
            "conditional_expectations.png",
            "p_alive.png",
            "manifest.json",
        ]
    )
    for figure in ("tracking.png", "conditional_expectations.png", "p_alive.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the tables are those of sim.fit_transactions on the same log and split
    result = sim.fit_transactions(CDNOW_SAMPLE_PATH, "1997-09-30", "1998-06-30", unit="week")
    for name, table in result.tables().items():
        saved = pd.read_csv(out / f"{name}.csv")
        expected = pd.read_csv(__import__("io").StringIO(table.to_csv(index=False)))
        drop = ["seconds"] if name == "fit" else []
        pd.testing.assert_frame_equal(
            saved.drop(columns=drop), expected.drop(columns=drop), check_exact=False, rtol=1e-9
        )
    fit = pd.read_csv(out / "fit.csv").set_index("model")
    assert fit["converged"].all() and fit.loc["bgnbd", "loglik"] == pytest.approx(-9582.43, abs=0.01)
    evaluation = pd.read_csv(out / "evaluation.csv")
    assert evaluation["model"].tolist() == ["bgnbd", "pnbd"] and (evaluation["actual_total"] == 1882).all()


def test_cdnow_manifest_records_the_inputs(cdnow_run):
    out, _ = cdnow_run
    manifest = json.loads((out / "manifest.json").read_text())
    inputs = manifest["inputs"]
    assert inputs["log"] == str(CDNOW_SAMPLE_PATH)
    assert inputs["log_sha256"] == hashlib.sha256(CDNOW_SAMPLE_PATH.read_bytes()).hexdigest()
    assert inputs["columns"] == {"customer": "customer_id", "date": "date", "amount": "amount"}
    assert (inputs["calibration_end"], inputs["holdout_end"], inputs["unit"]) == (
        "1997-09-30",
        "1998-06-30",
        "week",
    )
    assert inputs["models"] == ["bgnbd", "pnbd", "ggamma"]
    assert (inputs["rows_read"], inputs["rows_merged"], inputs["late_customers"]) == (6919, 223, 0)
    assert inputs["customers"] == 2357
    assert manifest["versions"]["sim"] and manifest["versions"]["scipy"]
    assert manifest["command"].startswith("sim ")  # the command line as typed (here pytest's)
    # every other file is listed with its SHA-256 (the manifest is written last)
    files = manifest["files"]
    assert set(files) == {
        p.name for p in out.iterdir() if p.name not in ("manifest.json",) and not p.name.startswith(".")
    }
    for name, digest in files.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest


def test_cdnow_terminal_summary(cdnow_run):
    _, printed = cdnow_run
    assert "6,919 rows read; 223 same-day rows of one customer merged into one transaction each" in printed
    assert "6,696 transactions of 2,357 customers" in printed
    assert "holdout evaluation" in printed and "tracking_mape" in printed
    assert "every fit converged" in printed
    for model in ("bgnbd", "pnbd", "ggamma"):
        assert model in printed


def test_a_fit_that_does_not_converge_is_reported_not_an_error(tmp_path, capsys):
    """Thirty customers who buy every week and never stop: nothing identifies a dropout
    process, the estimates run to the boundary, and the fit says so (exit 0).
    """
    rows = [
        (
            f"C{c}",
            (pd.Timestamp("2024-01-01") + pd.Timedelta(days=7 * week + c % 3)).date().isoformat(),
            10 + c,
        )
        for c in range(30)
        for week in range(20)
    ]
    log = tmp_path / "regular.csv"
    pd.DataFrame(rows, columns=["customer_id", "date", "amount"]).to_csv(log, index=False)
    out = tmp_path / "out"
    code, printed, error = _run(
        capsys,
        ["fit", str(log), "--calibration-end", "2024-04-30", "--holdout-end", "2024-05-20", "--out", str(out)]
        + ["--models", "bgnbd,pnbd", "--no-figure"],
    )
    assert code == 0, error
    assert "NOT CONVERGED: bgnbd" in printed and "converged = False in fit.csv" in printed
    fit = pd.read_csv(out / "fit.csv").set_index("model")
    assert not fit.loc["bgnbd", "converged"] and isinstance(fit.loc["bgnbd", "message"], str)
    assert json.loads((out / "manifest.json").read_text())["fits"]["bgnbd"]["converged"] is False


def test_fit_result_save_from_python(tmp_path):
    result = sim.fit_transactions(sim.data.load_cdnow_sample(), "1997-09-30", "1998-06-30", models=("bgnbd",))
    assert isinstance(result, sim.FitResult)
    out = result.save(tmp_path / "py", command="python")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["log"] == "the table" and "log_sha256" not in manifest["inputs"]
    assert manifest["command"] == "python" and (out / "evaluation.csv").is_file()
    with pytest.raises(sim.exceptions.ResultExistsError):
        result.save(out)
    with pytest.raises(ValueError, match="plain file name"):
        result.save(tmp_path / "other", figures={"../x.png": None})


def test_option_helpers():
    assert (
        parse_size("4G") == 4 * 1024**3 and parse_size("500M") == 500 * 1024**2 and parse_size("1024") == 1024
    )
    assert parse_size("1.5GiB") == int(1.5 * 1024**3)
    message = cli_message(sim.DataError("x (max_bytes=10); pass a larger max_bytes, or amount_column=None"))
    assert message == "x; pass a larger --max-size (e.g. --max-size 4G), or --no-amount"
    assert os.fspath(CDNOW_SAMPLE_PATH).endswith("cdnow_sample.csv")
