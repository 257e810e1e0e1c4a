"""Faults and extremes: the model's functions at extreme inputs, the kernel at the corners of
the allowed config ranges, the NaN guard of the results, safe output paths, atomic writes,
and no pickle/eval anywhere in the package (issue 7, items 3 and 6).
"""

import ast
import hashlib
import itertools
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import sim
from sim.cli.main import main
from sim.engines.core import simulate_chunk
from sim.exceptions import NonFiniteResultError, ResultExistsError, UnsafeOutputError
from sim.io.paths import RUN_MARKER, check_output_dir, default_result_dir, is_protected_dir
from sim.io.results import MANIFEST, atomic_write_bytes, prepare_result_dir, save_result
from sim.model import equations as model
from sim.model.arrays import model_arrays
from sim.model.config import config_from_dict
from sim.model.names import STAGES
from sim.model.policies import policy_tables
from sim.model.sections import MAX_MAGNITUDE, MIN_CARE_SCALE
from sim.tables.partials import M_CLV3
from sim.tables.result import NAN_WHEN_EMPTY, ProjectionResult

SIM = Path(sim.__file__).resolve().parent
M = MAX_MAGNITUDE
TINY = 5e-324  # the smallest positive float64
INF = float("inf")

# Both builds of every equation: the numba-compiled one (scalars, as the kernels call it) and
# the plain Python body on NumPy arrays (as the vectorised reference calls it).
BUILDS = ["jit", "py_func"]


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


# ----------------------------------------------------------------------------- model functions


@pytest.mark.parametrize("build", BUILDS)
def test_logistic_satisfaction_never_overflows(build):
    """(M4) ``s = m s_prev + (1 - m) Λ(d / κ)`` stays a finite number in [0, 1] for any
    disconfirmation (even ±inf) and any scale down to the smallest float, because the
    logistic is evaluated from exp(-|x|) in [0, 1]; and it is monotone in the disconfirmation.
    """
    disconfirmation = [-INF, -1e308, -1e154, -1.0, -TINY, 0.0, TINY, 1.0, 1e154, 1e308, INF]
    previous, d, memory, scale = _grid(
        [0.0, 0.5, 1.0], disconfirmation, [0.0, 0.5, 1.0], [TINY, 1e-300, 1.0, M, 1e300]
    )
    s = _evaluate(model.update_satisfaction, build, previous, d, memory, scale)
    assert np.isfinite(s).all() and (s >= 0.0).all() and (s <= 1.0).all()
    by_d = s.reshape(3, len(disconfirmation), 3, 5)
    assert (np.diff(by_d, axis=1) >= 0.0).all()
    # saturation is exact: with no memory, d = ±inf gives satisfaction 0 and 1
    no_memory = memory == 0.0
    assert (s[no_memory & (d == INF)] == 1.0).all() and (s[no_memory & (d == -INF)] == 0.0).all()


@pytest.mark.parametrize("build", BUILDS)
def test_adjusted_probability_stays_a_probability(build):
    """(M7) ``odds(p) = odds(base) e^shift``: in [0, 1] for any shift (±inf included), with 0
    and 1 fixed points, no overflow in ``exp`` (the shift is clipped to ±60), monotone in shift.
    """
    shifts = [-INF, -1e308, -700.0, -60.0, -1.0, 0.0, 1.0, 60.0, 700.0, 1e308, INF]
    bases = [0.0, TINY, 1e-300, 0.3, 1.0 - 2.0**-53, 1.0]
    base, shift = _grid(bases, shifts)
    p = _evaluate(model.adjusted_probability, build, base, shift)
    assert np.isfinite(p).all() and (p >= 0.0).all() and (p <= 1.0).all()
    assert (p[base == 0.0] == 0.0).all() and (p[base == 1.0] == 1.0).all()
    assert (p[shift == 0.0] == base[shift == 0.0]).all()
    assert (np.diff(p.reshape(len(bases), len(shifts)), axis=1) >= 0.0).all()


@pytest.mark.parametrize("build", BUILDS)
def test_transition_probabilities_are_probabilities_at_any_loyalty_effect(build):
    """(M7) forward and exit probabilities lie in [0, 1] and sum to at most 1 (to rounding)
    for every stage, loyalty, base probability, loyalty effect up to the config maximum and
    segment exit odds from 0 to the maximum.
    """
    stage, loyalty, neutral, forward0, exit0, beta_f, beta_x, odds = _grid(
        [0, 1, 2, 3],
        [0.0, 1.0],
        [0.0, 0.5, 1.0],
        [0.0, 0.5, 1.0],
        [0.0, 0.5, 1.0],
        [0.0, M],
        [0.0, M],
        [0.0, 1.0, M],
    )
    forward, leave = _evaluate(
        model.transition_probabilities, build, stage, loyalty, neutral, forward0, exit0, beta_f, beta_x, odds
    )
    for p in (forward, leave):
        assert np.isfinite(p).all() and (p >= 0.0).all() and (p <= 1.0).all()
    assert (forward + leave <= 1.0 + 4 * np.finfo(float).eps).all()
    # a base probability of 0 is never moved by loyalty or odds
    assert (forward[forward0 == 0.0] == 0.0).all() and (leave[exit0 == 0.0] == 0.0).all()


@pytest.mark.parametrize("build", BUILDS)
def test_loyalty_curve_is_bounded_and_monotone_at_extreme_thresholds(build):
    """(M6) loyalty in [0, 1], non-decreasing in satisfaction, for satisfaction outside [0, 1]
    (clipped) and zone thresholds as close to 0 and 1 as a config allows.
    """
    satisfaction = [-1e300, -1.0, 0.0, TINY, 0.2, 0.5, 0.9, 1.0 - 2.0**-53, 1.0, 2.0, 1e300]
    for defection, affection, low, high in [
        (TINY, 1.0 - 2.0**-53, 0.0, 1.0),
        (0.35, 0.75, 0.38, 0.42),
        (0.5 - 2.0**-53, 0.5, 0.0, 0.0),
        (TINY, 2 * TINY, 1.0, 1.0),
    ]:
        s = np.array(satisfaction)
        args = [np.full_like(s, v) for v in (defection, affection, low, high)]
        loyalty = _evaluate(model.loyalty_from_satisfaction, build, s, *args)
        assert np.isfinite(loyalty).all() and (loyalty >= 0.0).all() and (loyalty <= 1.0).all()
        assert (np.diff(loyalty) >= 0.0).all(), (defection, affection, loyalty)


@pytest.mark.parametrize("build", BUILDS)
def test_care_response_is_finite_over_the_allowed_ranges(build):
    """(M1) ``g(a) = G (1 - e^{-a/c}) - η (a/c)^2`` is finite and at most G for every spend a
    policy can produce (up to MAX_MAGNITUDE² with a segment multiplier), every care scale
    down to MIN_CARE_SCALE and gain and annoyance up to MAX_MAGNITUDE: ``e^{-a/c}`` has a
    non-negative argument, so only the quadratic term grows, to at most ~1e78.
    """
    spend, gain, scale, annoyance = _grid(
        [0.0, TINY, 1.0, M, M * M], [0.0, 1.0, M], [MIN_CARE_SCALE, 1.0, M], [0.0, 0.06, M]
    )
    care = _evaluate(model.care_response, build, spend, gain, scale, annoyance)
    assert np.isfinite(care).all()
    assert (care <= gain).all()
    assert (care[spend == 0.0] == 0.0).all()
    # the worst case is exactly what the formula says, not a clipped stand-in
    worst = (spend == M * M) & (scale == MIN_CARE_SCALE) & (annoyance == M) & (gain == M)
    ratio = M * M / MIN_CARE_SCALE
    np.testing.assert_allclose(care[worst], M - M * ratio * ratio, rtol=1e-15)


@pytest.mark.parametrize("build", BUILDS)
def test_wallet_and_cash_flows_are_finite_at_the_extremes(build):
    """(A2) ``W = median e^{σ z}`` and (C1-C6) stay finite at the largest median, σ = 4 and a
    normal draw of 14 (the generator's ziggurat tail cannot exceed about 13.7), with tenure
    ramps from scales as small as the smallest float and as large as MAX_MAGNITUDE.
    """
    z = np.array([-14.0, 0.0, 14.0])
    wallet = _evaluate(model.customer_wallet, build, z, np.full(3, M), np.full(3, 4.0))
    assert np.isfinite(wallet).all() and (wallet > 0.0).all()
    wallet, tenure, scale, growth, premium, loyalty, high = _grid(
        [0.0, wallet.max()], [0.0, 1.0, 1e6], [TINY, 1.0, M], [0.0, M], [0.0, M], [0.0, 1.0], [0.0, 0.42, 1.0]
    )
    n = len(wallet)
    flows = _evaluate(
        model.period_cash_flows,
        build,
        wallet,
        tenure,
        np.ones(n),
        np.ones(n),
        np.ones(n),
        np.full(n, -M),
        premium,
        loyalty,
        high,
        growth,
        scale,
        np.ones(n),
        np.full(n, M),
        np.zeros(n),
    )
    for part in flows:
        assert np.isfinite(part).all()


@pytest.mark.parametrize(
    "gain, annoyance", [(1.0, 0.06), (1.0, TINY), (1.0, 1e-300), (M, TINY), (M, M), (1e-300, M), (M, 1e-12)]
)
def test_best_care_spend_is_the_peak_even_for_tiny_annoyance(gain, annoyance):
    """The 'maximise satisfaction' spend solves ``G e^{-x} = 2 η x`` (x = a/c). With a tiny
    annoyance the old bracket [0, G/(2η) + 1] was astronomically wide (brentq gave up after
    100 iterations, so the max_satisfaction policy could not run); now it is found.
    """
    scale = 4.0
    spend = model.best_care_spend(gain, scale, annoyance)
    x = spend / scale
    assert math_isfinite(spend) and spend >= 0.0
    # the first-order condition f(x) = G e^{-x} - 2 η x = 0 (f decreasing) changes sign within
    # brentq's tolerance (xtol 2e-12 + rtol 8.9e-16 |x|) of the returned root
    f = lambda x: gain * np.exp(-x) - 2.0 * annoyance * x  # noqa: E731
    delta = 4e-12 + 4e-15 * x
    assert f(max(x - delta, 0.0)) >= 0.0 >= f(x + delta)
    # and it is the peak: the response is lower a little to either side
    response = lambda a: model.care_response.py_func(a, gain, scale, annoyance)  # noqa: E731
    step = max(spend * 1e-3, 1e-6)
    assert response(spend) >= response(spend + step) and response(spend) >= response(max(spend - step, 0.0))


def math_isfinite(value):
    return bool(np.isfinite(value))


# ----------------------------------------------------------------------------- the kernel at the corners


def _corner_config(annoyance, care_scale, satisfaction_scale, tenure_scale):
    """Every magnitude at its largest allowed value at once (money, multipliers, effects),
    probabilities at 0 or 1, thresholds as close to the ends as allowed.
    """
    stages = {stage: M for stage in STAGES}
    ones = {stage: 1.0 for stage in STAGES}
    return config_from_dict(
        {
            "population": {
                "customers": 64,
                "wallet_median": M,
                "wallet_sigma": 4.0,
                "relationship_share": 0.5,
            },
            "dynamics": {
                "base_performance": {"relationship": M, "transactional": 0.0},
                "performance_fit_sd": M,
                "performance_noise": M,
                "initial_expectation": -M,
                "satisfaction_scale": satisfaction_scale,
                "satisfaction_tolerance": M,
                "care_gain": M,
                "care_scale": care_scale,
                "annoyance": annoyance,
                "stage_effectiveness": stages,
            },
            "loyalty": {
                "defection_threshold": TINY,
                "affection_threshold": 1.0 - 2.0**-53,
                "indifference_low": 0.0,
                "indifference_high": 1.0,
            },
            "transitions": {
                "loyalty_effect_advance": M,
                "loyalty_effect_exit": M,
                "exit_odds": {"relationship": M, "transactional": 0.0},
                "long_term_periods": 1_000_000,
            },
            "word_of_mouth": {
                "people_told": {"dissatisfied": M, "satisfied": M, "highly_satisfied": M},
                "influence": {"dissatisfied": -M, "satisfied": M, "highly_satisfied": M},
                "talk_probability": 1.0,
                "referral_value": M,
            },
            "economics": {
                "annual_discount_rate": 0.0,
                "share_of_wallet_growth": M,
                "tenure_scale": tenure_scale,
                "cost_to_serve": M,
                "margin": ones,
                "share_of_wallet": ones,
                "cross_sell_share": ones,
                "cross_sell_margin": 1.0,
                "price_premium": {"relationship": M, "transactional": M},
                "acquisition_cost": {"relationship": M, "transactional": M},
            },
            "policies": [
                {
                    "name": "stage",
                    "kind": "stage",
                    "spend": stages,
                    "segment_multiplier": {"relationship": M, "transactional": M},
                },
                {
                    "name": "value",
                    "kind": "value",
                    "tier_spend": {"A": M, "B": M, "C": M},
                    "stage_multiplier": stages,
                },
                {"name": "max_satisfaction", "kind": "max_satisfaction"},
                {"name": "reactive", "kind": "reactive", "spend": M, "satisfaction_drop": TINY},
                {"name": "none", "kind": "none"},
            ],
            "run": {"horizon": 24, "replications": 1},
        }
    )


@pytest.mark.parametrize(
    "annoyance, care_scale, satisfaction_scale, tenure_scale",
    list(itertools.product([0.0, M], [MIN_CARE_SCALE, M], [TINY, M], [TINY, M])),
)
def test_kernel_stays_finite_at_the_corners_of_the_allowed_ranges(
    annoyance, care_scale, satisfaction_scale, tenure_scale
):
    """The bounds of sim.model.config (MAX_MAGNITUDE, MIN_CARE_SCALE) are chosen so that nothing
    overflows: with every magnitude at its maximum at once, the projection's per-customer
    CLVs and every table are finite (the NaN guard of from_partials would raise otherwise)
    and the invariants hold.
    """
    config = _corner_config(annoyance, care_scale, satisfaction_scale, tenure_scale)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even an overflow warning in the reductions
        result = sim.project(config)
    for values in result.clv.values():
        assert np.isfinite(values).all()
    summary = result.summary
    assert np.isfinite(summary.select_dtypes("number").to_numpy()).all()
    parts = (
        summary[[f"clv{i}" for i in range(1, 7)]].sum(axis=1)
        - summary["retention_spend"]
        - summary["acquisition_cost"]
    )
    scale = (
        summary[[f"clv{i}" for i in range(1, 7)] + ["retention_spend", "acquisition_cost"]].abs().sum(axis=1)
    )
    assert (abs(parts - summary["clv_mean"]) <= 1e-12 * scale).all()
    assert (summary["retention_spend"] >= 0.0).all()
    shares = result.stages.groupby(["policy", "period"])["share"].sum()
    np.testing.assert_allclose(shares, 1.0, atol=1e-12)


# ----------------------------------------------------------------------------- NaN guard


@pytest.fixture(scope="module")
def small_run():
    """One customer, one period, one policy: every documented empty-group NaN appears."""
    config = config_from_dict(
        {
            "population": {"customers": 1},
            "run": {"horizon": 1, "replications": 1},
            "policies": [{"name": "u", "kind": "uniform", "spend": 0.0}],
        }
    )
    partials = simulate_chunk(model_arrays(config), policy_tables(config), 1, 0, 0, 1, 1)
    return config, partials


def test_documented_empty_groups_are_the_only_nans(small_run):
    """One customer for one period: stages other than exploration are never visited,
    patterns III/IV are empty, groups A and B of the value table hold nobody, and one
    policy has no comparison — these NaN (and only these, per NAN_WHEN_EMPTY) pass the guard.
    """
    config, partials = small_run
    result = ProjectionResult.from_partials(config, [partials])
    seen = set()
    for name in result.TABLES:
        frame = result.table(name)
        numeric = frame.select_dtypes("number")
        assert not np.isinf(numeric.to_numpy(dtype=float)).any(), name
        for column in numeric.columns:
            if frame[column].isna().any():
                seen.add((name, column))
                assert column in NAN_WHEN_EMPTY.get(name, {}), (name, column)
    assert ("by_stage", "profit_mean") in seen and ("patterns", "clv_mean") in seen
    assert ("value_concentration", "negative_share") in seen
    assert result.summary.notna().all().all() and result.stages.notna().all().all()


@pytest.mark.parametrize(
    "inject, expected",
    [
        (lambda p: p.money.__setitem__((0, 0, M_CLV3), np.nan), ["summary.clv3", "nan", "policy 'u'"]),
        (lambda p: p.money.__setitem__((0, 0, M_CLV3), np.inf), ["summary.clv3", "inf"]),
        (
            lambda p: p.clv.__setitem__((0, 0), -np.inf),
            ["CLV of policy 'u'", "-inf", "replication 0, customer 0"],
        ),
        (
            lambda p: p.stage_sums.__setitem__((0, 0, 0, 1), np.nan),
            ["by_stage.satisfaction_mean", "stage 'exploration'"],
        ),
        (
            lambda p: p.period_sums.__setitem__((0, 0, 0, 0), np.inf),
            ["trajectory.profit_mean", "inf", "period 0"],
        ),
    ],
    ids=["nan-part", "inf-part", "inf-customer", "nan-stage-mean", "inf-period-mean"],
)
def test_a_nan_or_inf_in_a_result_is_an_error_naming_its_origin(small_run, inject, expected):
    """A NaN or inf where the model guarantees a finite number is never silent: from_partials
    raises NonFiniteResultError naming the table and column (or policy and customer).
    """
    config, partials = small_run
    broken = simulate_chunk(model_arrays(config), policy_tables(config), 1, 0, 0, 1, 1)
    inject(broken)
    with pytest.raises(NonFiniteResultError) as caught:
        ProjectionResult.from_partials(config, [broken])
    message = str(caught.value)
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_project_and_save_never_see_a_nan_silently(small_run, tmp_path, monkeypatch):
    """End to end: a kernel that returned NaN makes sim.project raise before anything is saved."""
    import sim.runs.projection as projection

    real = projection.simulate_chunk

    def broken(*args, **kwargs):
        partials = real(*args, **kwargs)
        partials.money[:] = np.nan
        return partials

    monkeypatch.setattr(projection, "simulate_chunk", broken)
    config, _ = small_run
    with pytest.raises(NonFiniteResultError):
        sim.project(config)


# ----------------------------------------------------------------------------- output paths


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fake home folder (Path.home() follows $HOME on POSIX)."""
    folder = tmp_path / "home" / "researcher"
    folder.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(folder))
    return folder


@pytest.mark.parametrize("force", [False, True])
def test_root_and_home_are_never_result_folders(home, force):
    for folder in (Path("/"), home, home.parent, Path("~")):
        assert is_protected_dir(folder)
        with pytest.raises(UnsafeOutputError, match="never result folders"):
            check_output_dir(folder, force=force)
        with pytest.raises(ResultExistsError):  # so every CLI that catches ResultExistsError reports it
            prepare_result_dir(folder, force=force)
    assert not is_protected_dir(home / "results" / "x")
    assert check_output_dir(home / "results" / "x") == home / "results" / "x"


def test_a_folder_of_other_files_is_refused_unless_force(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "draft.tex").write_text("...")
    with pytest.raises(UnsafeOutputError, match=r"draft\.tex.*--force"):
        prepare_result_dir(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["draft.tex"]  # nothing written
    assert prepare_result_dir(folder, force=True) == folder
    assert (folder / "draft.tex").read_text() == "..."  # --force never deletes other files
    assert (folder / RUN_MARKER).exists()


def test_force_never_overwrites_someone_elses_result_like_files(tmp_path, capsys):
    """Sim run --force --out into a folder that is not a sim result but holds a file a result
    could replace (someone's summary.csv) is refused before any work; the file is untouched.
    """
    from sim.cli.main import main

    folder = tmp_path / "analysis"
    folder.mkdir()
    (folder / "summary.csv").write_text("their numbers\n")
    config = tmp_path / "c.toml"
    config.write_text('name = "c"\n[population]\ncustomers = 10\n[run]\nhorizon = 2\nreplications = 1\n')
    assert main(["run", str(config), "--out", str(folder), "--force", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "holds files a result could overwrite (summary.csv)" in error and "Traceback" not in error
    assert sorted(p.name for p in folder.iterdir()) == ["summary.csv"]
    assert (folder / "summary.csv").read_text() == "their numbers\n"
    with pytest.raises(UnsafeOutputError, match="never replaces other files"):
        prepare_result_dir(folder, force=True)
    # without --force the message does not suggest --force (it would not help)
    with pytest.raises(UnsafeOutputError) as refused:
        prepare_result_dir(folder)
    assert "--force never replaces other files" in str(refused.value) and "pass --force" not in str(
        refused.value
    )


def test_another_tools_manifest_is_not_a_sim_result(tmp_path, capsys):
    """A folder whose manifest.json was written by another tool (here a web app's, listing
    its files) is not a sim result folder: --force neither deletes the files it lists nor
    replaces it.
    """
    from sim.cli.main import main

    folder = tmp_path / "webapp"
    folder.mkdir()
    (folder / "index.html").write_text("<html></html>\n")
    (folder / "app.js").write_text("run()\n")
    manifest = json.dumps({"files": {"index.html": "x", "app.js": "y"}})
    (folder / "manifest.json").write_text(manifest)
    config = tmp_path / "c.toml"
    config.write_text('name = "c"\n[population]\ncustomers = 10\n[run]\nhorizon = 2\nreplications = 1\n')
    assert main(["run", str(config), "--out", str(folder), "--force", "--no-progress"]) == 2
    assert "holds files a result could overwrite (manifest.json)" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["app.js", "index.html", "manifest.json"]
    assert (folder / "manifest.json").read_text() == manifest


def test_force_writes_beside_a_config_and_notes(tmp_path, capsys):
    """--force into a folder that holds the experiment's own config and notes (types sim run
    does not write) runs, and keeps them.
    """
    from sim.cli.main import main

    folder = tmp_path / "myexp"
    folder.mkdir()
    config = folder / "config.toml"
    config.write_text('name = "c"\n[population]\ncustomers = 10\n[run]\nhorizon = 2\nreplications = 1\n')
    (folder / "notes.txt").write_text("why\n")
    arguments = ["run", str(config), "--out", str(folder), "--no-progress", "--no-figure"]
    assert main(arguments) == 2 and "pass --force to write beside them" in capsys.readouterr().err
    assert main(arguments + ["--force"]) == 0
    assert (folder / MANIFEST).exists() and (folder / "notes.txt").read_text() == "why\n" and config.exists()
    capsys.readouterr()


def test_empty_hidden_only_and_interrupted_folders_are_accepted(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".DS_Store").write_bytes(b"")
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    (interrupted / RUN_MARKER).write_text("")
    (interrupted / "summary.csv").write_text("half a run")
    for folder in (empty, hidden, interrupted, tmp_path / "new" / "nested"):
        assert prepare_result_dir(folder) == folder
        assert (folder / RUN_MARKER).exists()


def test_a_file_is_not_a_result_folder(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("x")
    for force in (False, True):
        with pytest.raises(ResultExistsError, match="not a folder"):
            prepare_result_dir(path, force=force)


def test_a_complete_result_is_never_overwritten_without_force(small_run, tmp_path):
    config, partials = small_run
    result = ProjectionResult.from_partials(config, [partials])
    out = tmp_path / "run"
    save_result(result, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ResultExistsError, match="complete result.*--force"):
        save_result(result, out)
    with pytest.raises(ResultExistsError):
        prepare_result_dir(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched, manifest included
    save_result(result, out, force=True)
    assert json.loads((out / MANIFEST).read_text())["complete"] is True


def test_force_replaces_a_complete_result_as_a_whole(tmp_path, capsys):
    """Sim run --force over an older result whose manifest lists files this run does not
    write (here the old run's comparison figure and an extra table): they are removed, so the
    folder holds exactly the new manifest's files; unlisted files and files outside stay.
    """
    from sim.cli.main import main

    config = tmp_path / "c.toml"
    config.write_text('name = "c"\n[population]\ncustomers = 50\n[run]\nhorizon = 3\nreplications = 1\n')
    out = tmp_path / "run"
    arguments = ["run", str(config), "--out", str(out), "--no-progress"]
    assert main(arguments) == 0
    old = json.loads((out / MANIFEST).read_text())
    assert "comparison.png" in old["files"]
    (out / "sweep.csv").write_text("old table\n")
    (out / "notes.txt").write_text("mine\n")
    (tmp_path / "outside.csv").write_text("old table\n")
    digest = hashlib.sha256(b"old table\n").hexdigest()
    old["files"].update({"sweep.csv": digest, "../outside.csv": digest})
    (out / MANIFEST).write_text(json.dumps(old))
    assert main(arguments + ["--no-figure", "--force"]) == 0
    new = json.loads((out / MANIFEST).read_text())
    present = {path.name for path in out.iterdir() if not path.name.startswith(".")}
    assert present == set(new["files"]) | {MANIFEST, "notes.txt"}
    assert "comparison.png" not in present and "sweep.csv" not in present
    assert (tmp_path / "outside.csv").read_text() == "old table\n"
    capsys.readouterr()


@pytest.mark.parametrize("name", ["..", ".", "../escape", "a/b", "/etc", "", "a b", "nul\x00"])
def test_default_folder_names_cannot_leave_results(tmp_path, name):
    with pytest.raises(UnsafeOutputError, match="cannot name a result folder"):
        default_result_dir(name, root=tmp_path / "results")


def test_default_folder_through_a_link_outside_results_needs_force(tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    assert default_result_dir("fresh", root=root) == root / "fresh"
    with pytest.raises(UnsafeOutputError, match="outside"):
        default_result_dir("linked", root=root)
    assert default_result_dir("linked", root=root, force=True) == root / "linked"


def _write_config(folder, name="tiny", customers=64):
    path = folder / "tiny.toml"
    path.write_text(
        f'name = "{name}"\n[population]\ncustomers = {customers}\n[run]\nhorizon = 3\nreplications = 1\n'
        '[[policies]]\nname = "none"\nkind = "none"\n'
    )
    return path


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


# ----------------------------------------------------------------------------- atomic writes


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "table.csv"
    atomic_write_bytes(target, b"old complete content")

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"old complete content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_crash_while_saving_leaves_an_incomplete_folder_that_can_be_rerun(small_run, tmp_path, monkeypatch):
    """The manifest is written last: a crash after some tables leaves no manifest (so the
    folder reads as incomplete, not as a result), and a plain rerun then completes it.
    """
    import sim.io.results as results

    config, partials = small_run
    result = ProjectionResult.from_partials(config, [partials])
    real = results.atomic_write_text
    written = []

    def crash_on_third(path, text):
        if len(written) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of saving
        written.append(Path(path).name)
        return real(path, text)

    monkeypatch.setattr(results, "atomic_write_text", crash_on_third)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        save_result(result, out)
    assert not (out / MANIFEST).exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(results, "atomic_write_text", real)
    order = []
    monkeypatch.setattr(
        results, "atomic_write_text", lambda path, text: (order.append(Path(path).name), real(path, text))[1]
    )
    save_result(result, out)  # no --force needed: nothing complete was there
    assert order[-1] == MANIFEST and set(json.loads((out / MANIFEST).read_text())["files"]) == {
        f"{name}.csv" for name in result.TABLES
    }


# ----------------------------------------------------------------------------- package audits


def _package_modules():
    return sorted(SIM.glob("*.py"))


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            owner = (
                func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            )
            yield node, owner, name


UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}


def test_no_pickle_eval_or_exec_in_the_package():
    """Inputs and outputs are TOML/JSON/CSV/parquet/npz only: no module of sim imports a
    pickle-like serialiser or calls eval/exec/compile, pandas' read_pickle/to_pickle, or
    np.load with allow_pickle=True (checked on the syntax tree, so docstrings don't count).
    """
    offences = []
    for path in _package_modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                offences += [
                    f"{path.name}:{node.lineno} import {a.name}"
                    for a in node.names
                    if a.name.split(".")[0] in UNSAFE_MODULES
                ]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
                offences.append(f"{path.name}:{node.lineno} from {node.module} import")
        for node, owner, name in _calls(tree):
            if isinstance(node.func, ast.Name) and name in {"eval", "exec", "compile"}:
                offences.append(f"{path.name}:{node.lineno} {name}()")
            if (
                isinstance(node.func, ast.Name)
                and name == "__import__"
                and not (node.args and isinstance(node.args[0], ast.Constant))
            ):
                offences.append(f"{path.name}:{node.lineno} __import__(<computed name>)")
            if name in {"read_pickle", "to_pickle"}:
                offences.append(f"{path.name}:{node.lineno} {name}()")
            if name == "load" and owner in {"np", "numpy"}:
                for keyword in node.keywords:
                    if keyword.arg == "allow_pickle" and not (
                        isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                    ):
                        offences.append(f"{path.name}:{node.lineno} np.load(allow_pickle=...)")
            if name == "load" and owner == "yaml":
                offences.append(f"{path.name}:{node.lineno} yaml.load")
    assert not offences, offences


def test_every_file_in_the_package_is_written_through_the_atomic_writer():
    """Only sim/results.py touches files for writing; every other module writes through
    atomic_write_bytes/atomic_write_text or save_result (temporary file + rename). Flags
    open(..., 'w'/'a'/'x'), Path.write_text/write_bytes, np.save*, DataFrame.to_csv/to_json/
    to_parquet with a target, and savefig to anything but an in-memory buffer.
    """
    offences = []
    for path in _package_modules():
        if path.name == "results.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, owner, name in _calls(tree):
            where = f"{path.name}:{node.lineno} {name}"
            if name == "open" and isinstance(node.func, ast.Name):
                modes = [a for a in node.args[1:2]] + [k.value for k in node.keywords if k.arg == "mode"]
                if any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes):
                    offences.append(where)
            elif name in {
                "write_text",
                "write_bytes",
                "savez",
                "savez_compressed",
                "savetxt",
                "to_parquet",
                "to_feather",
                "to_hdf",
                "to_excel",
            }:
                offences.append(where)
            elif name == "save" and owner in {"np", "numpy"}:
                offences.append(where)
            elif name in {"to_csv", "to_json"} and (
                node.args or any(k.arg in {"path_or_buf", "path"} for k in node.keywords)
            ):
                offences.append(where)
            elif name == "savefig" and node.args:
                target = node.args[0]
                in_memory = isinstance(target, ast.Name) and any(
                    word in target.id.lower() for word in ("buf", "stream")
                )
                if not in_memory:
                    offences.append(where)
    assert not offences, offences
