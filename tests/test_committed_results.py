"""The result copy the README shows (``results/committed/baseline/``) is what the code gives now.

The README's figure and the tables beside it are committed so that readers see them without
running anything; this test reruns the same experiment (the config and seed recorded in the
committed manifest) and compares every committed table with a fresh projection. A failure
means the model's numbers changed: regenerate the copy with the command in its manifest
(``sim run experiments/baseline.toml --out results/committed/baseline --force``) and commit it.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest

import sim
from sim.experiments.comparison import ExperimentResult

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "results" / "committed" / "baseline"
TABLES = ("summary", "stages", "satisfaction_retention")


@pytest.fixture(scope="module")
def manifest():
    return json.loads((COMMITTED / "manifest.json").read_text())


def test_committed_copy_is_of_the_current_baseline_config(manifest):
    """The manifest's resolved config is the current ``experiments/baseline.toml`` (so the
    README's first command reproduces the copy), and each committed table is the file the
    manifest lists (same SHA-256).
    """
    config = sim.load_config(REPO / "experiments" / "baseline.toml")
    assert manifest["complete"] is True and manifest["engine"] == "core"
    assert manifest["config"] == config.to_toml_dict()
    assert manifest["seed"] == config.run.seed
    for name in TABLES:
        digest = hashlib.sha256((COMMITTED / f"{name}.csv").read_bytes()).hexdigest()
        assert manifest["files"][f"{name}.csv"] == digest, name


def test_committed_tables_are_what_the_code_gives_now(manifest):
    """Every committed table equals a fresh run of the manifest's config to 1e-9 relative (the
    kernel is deterministic; the tolerance only absorbs the CSV's 17-digit round trip).
    """
    config = sim.config_from_dict(manifest["config"])
    fresh = ExperimentResult.from_projection(sim.project(config, keep_clv=False))
    for name in TABLES:
        committed = pd.read_csv(COMMITTED / f"{name}.csv")
        now = pd.read_csv(io.StringIO(fresh.table(name).to_csv(index=False)))
        assert list(committed.columns) == list(now.columns), name
        pd.testing.assert_frame_equal(committed, now, check_exact=False, rtol=1e-9, atol=1e-12, obj=name)


def test_manifest_git_state_ignores_regenerated_results(tmp_path):
    """``dirty`` in a manifest means tracked code or configs differ from the commit; a tracked
    file under ``results/`` being rewritten (a committed copy regenerated) does not count.
    """
    import shutil
    import subprocess

    from sim.io.results import git_commit

    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*arguments):
        subprocess.run(["git", *arguments], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "model.py").write_text("rate = 1\n")
    (tmp_path / "results" / "summary.csv").write_text("clv\n1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "start")
    state = git_commit(tmp_path)
    assert len(state["commit"]) == 40 and state["dirty"] is False
    (tmp_path / "results" / "summary.csv").write_text("clv\n2\n")
    assert git_commit(tmp_path)["dirty"] is False
    (tmp_path / "model.py").write_text("rate = 2\n")
    assert git_commit(tmp_path)["dirty"] is True
