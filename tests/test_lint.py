"""The code is lint-clean: ``ruff check`` and ``ruff format --check`` with the settings of
``pyproject.toml`` (pyflakes, pycodestyle, import order, numpy-style docstrings on public
names, lines of at most 110 characters). ruff is a dev dependency; a missing ruff fails.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

PATHS = ["sim", "tests", "benchmarks"]


def _ruff(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *arguments, "--no-cache", *PATHS],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ruff_check_is_clean():
    result = _ruff("check", "--output-format", "concise")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = _ruff("format", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
