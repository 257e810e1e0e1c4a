"""``sim run`` and ``sim optimize`` on bad input and interruptions: unsafe --out, an uncreatable
folder, a bad config in process, Ctrl-C, a resume with other settings, runs too large for the
machine — one line, exit 2 or 130, no work started, nothing lost.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

import sim
from sim.cli.main import main
from sim.io.results import MANIFEST
from sim.model.sections import MAX_MAGNITUDE

SIM = Path(sim.__file__).resolve().parent
M = MAX_MAGNITUDE
TINY = 5e-324  # the smallest positive float64
INF = float("inf")

# Both builds of every equation: the numba-compiled one (scalars, as the kernels call it) and
# the plain Python body on NumPy arrays (as the vectorised reference calls it).
BUILDS = ["jit", "py_func"]


def _write_config(folder, name="tiny", customers=64):
    path = folder / "tiny.toml"
    path.write_text(
        f'name = "{name}"\n[population]\ncustomers = {customers}\n[run]\nhorizon = 3\nreplications = 1\n'
        '[[policies]]\nname = "none"\nkind = "none"\n'
    )
    return path


def _grid(*axes):
    """Every combination of the given values, as one flat float64 array per axis."""
    mesh = np.meshgrid(*[np.asarray(axis, dtype=float) for axis in axes], indexing="ij")
    return [m.ravel() for m in mesh]


def _evaluate(function, build, *arrays):
    """``function`` on every combination (one call per element for the jitted build, one
    vectorised call for ``.py_func``); NumPy may overflow to ±inf in an intermediate, but
    never perform an invalid operation (inf - inf, 0 * inf), which is what makes a NaN.
    """
    if build == "py_func":
        with np.errstate(invalid="raise", over="ignore", divide="ignore", under="ignore"):
            out = function.py_func(*arrays)
        return (
            tuple(np.asarray(o, dtype=float) for o in out)
            if isinstance(out, tuple)
            else np.asarray(out, dtype=float)
        )
    results = [function(*(float(a[i]) for a in arrays)) for i in range(len(arrays[0]))]
    if isinstance(results[0], tuple):
        return tuple(np.array(column, dtype=float) for column in zip(*results))
    return np.array(results, dtype=float)


def test_cli_writes_under_results_by_default_and_refuses_unsafe_out(tmp_path, monkeypatch, capsys, home):
    """``sim run`` (in-process): default results/<name>; --out at home or at a folder of other
    files exits 2 with one line and writes nothing; a second run needs --force.
    """
    monkeypatch.chdir(tmp_path)
    config = _write_config(tmp_path)
    quiet = ("--no-progress", "--no-figure")
    assert main(["run", str(config), *quiet]) == 0
    assert (tmp_path / "results" / "tiny" / MANIFEST).exists()
    capsys.readouterr()
    assert main(["run", str(config), *quiet]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["run", str(config), "--out", str(home), *quiet]) == 2
    error = capsys.readouterr().err
    assert "never result folders" in error and "Traceback" not in error and error.count("\n") == 1
    assert list(home.iterdir()) == []
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "draft.tex").write_text("...")
    assert main(["run", str(config), "--out", str(papers), *quiet]) == 2
    assert "not a sim result" in capsys.readouterr().err
    assert sorted(p.name for p in papers.iterdir()) == ["draft.tex"]
    assert main(["run", str(config), "--out", str(papers), "--force", *quiet]) == 0
    assert (papers / MANIFEST).exists() and (papers / "draft.tex").exists()


def test_cli_reports_an_uncreatable_folder_in_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    config = _write_config(tmp_path)
    assert main(["run", str(config), "--out", str(blocker / "sub"), "--no-progress", "--no-figure"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("sim: cannot create the result folder") and "Traceback" not in error


def test_bad_config_in_process_starts_no_work(tmp_path, monkeypatch, capsys):
    """A bad config exits 2 before the kernel is ever called and before any folder exists."""
    _forbid_the_kernel(monkeypatch, "the kernel ran for a bad config")
    config = _write_config(tmp_path, customers=0)
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--no-progress", "--no-figure"]) == 2
    assert "population.customers = 0: must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _forbid_the_kernel(monkeypatch, why: str) -> None:
    """Make any call of the kernel by sim.project fail the test with ``why``: what follows
    must be refused before any work.
    """
    import sim.runs.projection as projection

    def no_work(*args, **kwargs):  # pragma: no cover - reaching it is the failure
        raise AssertionError(why)

    monkeypatch.setattr(projection, "simulate_chunk", no_work)


def _chunked_config(tmp_path):
    """An experiment of three chunks of 4,096 customers, one policy, 6 periods."""
    config = tmp_path / "chunked.toml"
    config.write_text(
        'name = "chunked"\n[population]\ncustomers = 12288\n[run]\nhorizon = 6\nreplications = 1\n'
        'chunk_customers = 4096\n[[policies]]\nname = "none"\nkind = "none"\n'
    )
    return config


def _interrupt_after_one_chunk(monkeypatch):
    """Make the second chunk of a run raise KeyboardInterrupt (Ctrl-C); returns the real kernel."""
    import sim.runs.projection as projection

    real_simulate, calls = projection.simulate_chunk, []

    def interrupted_after_one_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real_simulate(*args, **kwargs)

    monkeypatch.setattr(projection, "simulate_chunk", interrupted_after_one_chunk)
    return real_simulate


def test_ctrl_c_exits_130_in_one_line_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    """Ctrl-C (KeyboardInterrupt) in the middle of ``sim run`` ends with status 130 and one
    line saying how to continue, no traceback; the folder is left incomplete (no manifest)
    with the chunks done so far, and ``--resume`` completes it with the same numbers as an
    uninterrupted run.
    """
    import pandas as pd

    import sim.runs.projection as projection

    config = _chunked_config(tmp_path)
    arguments = ["run", str(config), "--no-progress", "--no-figure"]
    assert main(arguments + ["--out", str(tmp_path / "whole")]) == 0
    real_simulate = _interrupt_after_one_chunk(monkeypatch)
    out = tmp_path / "interrupted"
    capsys.readouterr()
    assert main(arguments + ["--out", str(out)]) == 130
    error = capsys.readouterr().err
    assert "interrupted" in error and "--resume" in error and "Traceback" not in error
    assert not (out / MANIFEST).exists() and len(list((out / ".chunks").glob("*.npz"))) == 1
    monkeypatch.setattr(projection, "simulate_chunk", real_simulate)
    assert main(arguments + ["--out", str(out), "--resume"]) == 0
    for table in ("summary.csv", "stages.csv", "comparison.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / table), pd.read_csv(tmp_path / "whole" / table))


def test_resume_with_another_seed_is_refused_and_keeps_the_chunks(tmp_path, monkeypatch, capsys):
    """``--resume`` on chunk files written under another seed (or config, or code) is refused
    in one line with exit 2 and the chunk files are left as they were (they are the
    interrupted run's work); resuming with the original settings still completes it.
    """
    import sim.runs.projection as projection

    config = _chunked_config(tmp_path)
    out = tmp_path / "interrupted"
    arguments = ["run", str(config), "--no-progress", "--no-figure", "--out", str(out)]
    real_simulate = _interrupt_after_one_chunk(monkeypatch)
    assert main(arguments) == 130
    monkeypatch.setattr(projection, "simulate_chunk", real_simulate)
    chunks = sorted((out / ".chunks").glob("*.npz"))
    assert len(chunks) == 1
    before = {path.name: path.read_bytes() for path in chunks}
    capsys.readouterr()
    assert main(arguments + ["--resume", "--seed", "5"]) == 2
    error = capsys.readouterr().err
    assert "another config, seed or version of the code" in error and "--force" in error
    assert "Traceback" not in error and error.count("\n") == 1
    assert {path.name: path.read_bytes() for path in sorted((out / ".chunks").glob("*.npz"))} == before
    assert not (out / MANIFEST).exists()
    assert main(arguments + ["--resume"]) == 0 and (out / MANIFEST).exists()


def test_a_run_too_large_for_the_machine_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """Sizes that would build hundreds of millions of work items, or a chunk larger than the
    memory available, are refused by ``sim run`` (exit 2, one problem naming the fields)
    before the result folder exists and before any allocation; ``sim.project`` raises the
    same ConfigError.
    """
    import time

    import sim.runs.executors as executors
    import sim.runs.projection as projection

    _forbid_the_kernel(monkeypatch, "the kernel ran for a run that cannot fit")
    huge = tmp_path / "huge.toml"
    huge.write_text(
        'name = "huge"\n[population]\ncustomers = 1000000000\n[run]\nreplications = 100000\n'
        "horizon = 100000\n"
    )
    started = time.perf_counter()
    assert main(["run", str(huge), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert time.perf_counter() - started < 30  # refused from the sizes, not after building 3.8e8 work items
    error = capsys.readouterr().err
    assert "381,500,000 work items; at most 1,000,000" in error and "run.replications" in error
    assert "Traceback" not in error and not (tmp_path / "out").exists()
    # memory: one chunk must fit in what the machine has available (here pretended to be 64 KiB)
    monkeypatch.setattr(executors, "_available_memory", lambda: 2**16)
    config = sim.config_from_dict(
        {"name": "tight", "population": {"customers": 8192}, "run": {"horizon": 120}}
    )
    needed = executors.chunk_bytes(config)
    assert needed > 2**16
    with pytest.raises(
        sim.ConfigError, match=r"run.chunk_customers.*needs about .* GiB, more than the 0.0 GiB available"
    ):
        sim.project(config)
    monkeypatch.setattr(executors, "_available_memory", lambda: needed)
    monkeypatch.setattr(projection, "simulate_chunk", executors.simulate_chunk)
    assert sim.project(config, replications=1, horizon=12).summary["customers"].iloc[0] == 8192


def test_precision_control_is_size_checked_at_its_replication_cap(tmp_path, capsys):
    """[precision] adds replications up to precision.max_replications: the size pre-check
    counts those, and names that field.
    """
    path = tmp_path / "precise.toml"
    path.write_text(
        'name = "precise"\n[population]\ncustomers = 2883584\n[run]\nreplications = 2\nhorizon = 2\n'
        "[precision]\ntarget_ci_halfwidth = 1.0\nmax_replications = 100000\n"
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "precision.max_replications" in error and "1,100,000 work items; at most 1,000,000" in error
    assert (
        "100,000 replications (precision.max_replications) x 11 chunks" in error
        and not (tmp_path / "out").exists()
    )


def test_sim_optimize_too_large_is_refused_before_any_folder(tmp_path, capsys):
    """Sim optimize checks the sizes of its objective and of the fresh-seed evaluation (from
    [optimize] or the overrides) before the result folder exists: exit 2, one message.
    """
    out = tmp_path / "opt"
    assert (
        main(
            [
                "optimize",
                "experiments/optimize.toml",
                "--customers",
                "1000000000",
                "--replications",
                "100000",
                "--out",
                str(out),
                "--no-figure",
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert "the optimize objective" in error and "work items; at most 1,000,000" in error
    assert "Traceback" not in error and not out.exists()


def test_a_sweep_with_one_point_too_large_is_refused_before_its_first_point(tmp_path, monkeypatch, capsys):
    """The size pre-check covers every point of a [sweep]: a grid whose last point would need
    10^9 customers x 10^4 replications is refused (exit 2, naming the point) before point 1
    runs and before the result folder exists; sim.run_sweep raises the same ConfigError.
    """
    _forbid_the_kernel(monkeypatch, "a sweep point ran before the grid was checked")
    path = tmp_path / "sweep.toml"
    path.write_text(
        'name = "sweep"\n[run]\nreplications = 10000\nhorizon = 12\n'
        '[sweep]\n"population.customers" = [100, 1000000000]\n'
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "run.replications (sweep point 2: population.customers = 1000000000)" in error
    assert "work items; at most 1,000,000" in error and "sweep point 1" not in error
    assert "Traceback" not in error and not (tmp_path / "out").exists()
    with pytest.raises(sim.ConfigError, match=r"sweep point 2: population.customers = 1000000000"):
        sim.run_sweep(sim.load_config(path))


# ----------------------------------------------------------------------------- population.snapshot


def _snapshot_config(folder, rows=None):
    """A config whose population is a snapshot CSV beside it (as sim fit writes them)."""
    if rows is None:
        base = sim.load_config(REPO / "experiments" / "baseline.toml")
        market = sim.simulate_market(base, customers=300, horizon=6, replications=1, snapshot_periods=[6])
        market.snapshot(6).to_csv(folder / "live.csv", index=False)
    else:
        (folder / "live.csv").write_text(rows)
    path = folder / "firm.toml"
    path.write_text(
        'name = "firm"\n[population]\nsnapshot = "live.csv"\n[run]\nhorizon = 12\nreplications = 1\n'
        '[[policies]]\nname = "none"\nkind = "none"\n'
        '[[policies]]\nname = "u"\nkind = "uniform"\nspend = 2.0\n'
    )
    return path


def test_a_snapshot_config_is_a_policy_comparison_on_those_customers(tmp_path, capsys):
    """Sim run on a config with population.snapshot projects the snapshot's customers (the
    path relative to the config) with sim.project_from: the same tables as from Python.
    """
    path = _snapshot_config(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--no-figure"]) == 0
    written = pd.read_csv(out / "comparison.csv")
    config = sim.load_config(path)
    snapshot = pd.read_csv(tmp_path / "live.csv")
    direct = sim.project_from(snapshot, config)
    np.testing.assert_allclose(written["delta_clv"], direct.comparison["delta_clv"], rtol=1e-12)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["snapshot"] == str((tmp_path / "live.csv").resolve())
    assert (pd.read_csv(out / "summary.csv")["customers"] == len(snapshot)).all()


@pytest.mark.parametrize(
    "rows, message",
    [
        ("customer,segment\n1,0\n", "snapshot is missing columns"),
        (
            "customer,segment,wallet,fit,tier,stage,satisfaction,previous_satisfaction,expectation,tenure\n"
            "1,0,50,0,2,7,0.5,0.5,0.5,3\n",
            "snapshot.stage = 7 (row 0): must be 0-3",
        ),
    ],
)
def test_a_bad_snapshot_is_refused_before_any_folder(tmp_path, capsys, rows, message):
    path = _snapshot_config(tmp_path, rows)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not out.exists()


def test_a_missing_snapshot_file_names_the_field(tmp_path, capsys):
    path = _snapshot_config(tmp_path)
    (tmp_path / "live.csv").unlink()
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "population.snapshot = 'live.csv': no such file" in capsys.readouterr().err
    with pytest.raises(sim.ConfigError, match="population.snapshot"):
        sim.project(sim.config_from_dict({"population": {"snapshot": "x.csv"}}))


def test_an_unreachable_dask_scheduler_is_one_line_exit_1(tmp_path, monkeypatch, capsys):
    from sim.exceptions import ExecutorError
    from sim.runs.executors import DaskExecutor

    def unreachable(self):
        raise ExecutorError("cannot reach the Dask scheduler 'tcp://10.0.0.5:8786': timed out")

    monkeypatch.setattr(DaskExecutor, "__enter__", unreachable)
    config = _write_config(tmp_path)
    argv = ["run", str(config), "--out", str(tmp_path / "o"), "--no-figure", "--no-progress"]
    assert main([*argv, "--executor", "dask", "--scheduler", "tcp://10.0.0.5:8786"]) == 1
    error = capsys.readouterr().err
    assert "cannot reach the Dask scheduler 'tcp://10.0.0.5:8786'" in error and "Traceback" not in error
    assert not (tmp_path / "o" / MANIFEST).exists()
