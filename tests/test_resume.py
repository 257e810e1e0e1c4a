"""Chunked execution and resume (sim/checkpoint.py; issue 6 item 5, issue 7 item 4).

* A real ``sim run`` process is killed with SIGKILL after its first chunk files appear;
  ``sim run --resume`` then finishes the run, and every CSV is byte for byte the CSV of an
  uninterrupted run.
* Corrupted, truncated, foreign (other config) and pickle-bearing chunk files are detected
  and recomputed, never trusted; the result is still bitwise the uninterrupted one.
* The result-folder rules: a folder with chunk files and no manifest is an interrupted run,
  refused without --resume (or --force, which starts over).
"""

import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim
from sim.checkpoint import CHUNK_DIR, ChunkStore, npz_bytes
from sim.cli import main
from sim.executors import plan_work
from sim.results import MANIFEST

CONFIG = """
name = "resumable"
[population]
customers = 65536
[run]
replications = 2
horizon = 120
chunk_customers = 4096
threads = 1
"""


def _csvs(folder: Path) -> dict:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.csv"))}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "resumable.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def uninterrupted(config_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "whole"
    assert main(["run", str(config_file), "--out", str(out), "--no-progress", "--no-figure"]) == 0
    assert not (out / CHUNK_DIR).exists()  # removed once the manifest is written
    return _csvs(out)


def test_a_killed_run_resumes_to_the_same_bytes(config_file, uninterrupted, tmp_path, capsys):
    """SIGKILL a `sim run` subprocess (32 chunks of 4,096 customers) once its first chunk
    file exists, then resume it."""
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "sim.cli", "run", str(config_file), "--out", str(out),
                                "--no-progress", "--no-figure"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    chunks = out / CHUNK_DIR
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and not list(chunks.glob("*.npz")):
        time.sleep(0.01)
    still_running = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert still_running, "the run finished before it could be killed: " + process.stderr.read().decode()
    done = sorted(chunks.glob("*.npz"))
    assert 1 <= len(done) < len(plan_work(sim.load_config(config_file)))
    assert not (out / MANIFEST).exists()
    assert not list(chunks.glob(".*.tmp"))  # the atomic writer leaves no half-written chunk behind...
    # ...or if the kill hit a write, that temporary file is not a chunk file and is ignored

    # without --resume the interrupted folder is refused, and left as it was
    assert main(["run", str(config_file), "--out", str(out), "--no-progress", "--no-figure"]) == 2
    error = capsys.readouterr().err
    assert "interrupted run" in error and "--resume" in error and "--force" in error
    assert sorted(chunks.glob("*.npz")) == done

    assert main(["run", str(config_file), "--out", str(out), "--no-progress", "--no-figure", "--resume"]) == 0
    printed = capsys.readouterr().out
    assert f"resumed {len(done)} of 32 chunks" in printed
    assert (out / MANIFEST).exists() and not chunks.exists()
    assert _csvs(out) == uninterrupted


def test_untrusted_chunk_files_are_recomputed(tmp_path):
    """A flipped byte, a truncated file, a chunk of another config, a pickled object and a
    stray file: each is rejected with its reason and recomputed; the numbers are unchanged."""
    config = sim.config_from_dict({"population": {"customers": 24_576}, "run": {
        "replications": 1, "horizon": 36, "chunk_customers": 4096, "seed": 5}})
    whole = sim.project(config, keep_clv=True)
    folder = tmp_path / "run"
    first = sim.project(config, checkpoint=folder, keep_clv=True)
    store = ChunkStore(folder, config)
    items = plan_work(config)
    paths = [store.path(item) for item in items]
    assert all(path.is_file() for path in paths) and len(paths) == 6

    data = bytearray(paths[0].read_bytes())  # 1: flip one byte in the middle of the archive
    data[len(data) // 2] ^= 0xFF
    paths[0].write_bytes(bytes(data))
    paths[1].write_bytes(paths[1].read_bytes()[:300])  # 2: truncated
    other = config.with_overrides(run={"seed": 6})  # 3: the same chunk of another seed
    sim.project(other, checkpoint=tmp_path / "other")
    paths[2].write_bytes(ChunkStore(tmp_path / "other", other).path(items[2]).read_bytes())
    with np.load(paths[3]) as archive:  # 4: a valid-looking archive that carries a pickled object
        arrays = {name: archive[name] for name in archive.files}
    arrays["clv"] = np.array([{"evil": True}], dtype=object)
    buffer = zipfile.ZipFile(paths[3], "w")
    for name, value in arrays.items():
        with buffer.open(f"{name}.npy", "w") as member:
            np.lib.format.write_array(member, value, allow_pickle=True)
    buffer.close()
    paths[4].write_bytes(npz_bytes({"item": np.array([0, 4 * 4096, 4096])}))  # 5: no checksum

    resumed = sim.project(config, checkpoint=folder, resume=True, keep_clv=True)
    rejected = resumed.timings["chunk_files_rejected"]
    assert resumed.timings["chunks_resumed"] == 1
    assert len(rejected) == 5
    assert "written for another config" in rejected[2]
    assert "no checksum" in rejected[4]
    assert any("unreadable" in reason or "checksum mismatch" in reason for reason in rejected[:2])
    for name in whole.TABLES:
        pd.testing.assert_frame_equal(whole.table(name), resumed.table(name), check_exact=True)
        pd.testing.assert_frame_equal(whole.table(name), first.table(name), check_exact=True)
    for policy in whole.clv:
        assert np.array_equal(whole.clv[policy], resumed.clv[policy])
    # the recomputed chunks were written again, now trusted
    again = sim.project(config, checkpoint=folder, resume=True, keep_clv=True)
    assert again.timings["chunks_resumed"] == 6 and again.timings["chunk_files_rejected"] == []


def test_chunks_without_clvs_do_not_serve_a_run_that_keeps_them(tmp_path, monkeypatch):
    """A large run (limit lowered to 0) keeps no CLVs in its chunk files; resuming it with
    keep_clv=True must recompute them rather than return a result without CLVs."""
    from sim import executors

    monkeypatch.setattr(executors, "CLV_KEEP_LIMIT", 0)
    config = sim.config_from_dict({"population": {"customers": 8192}, "run": {"replications": 1, "horizon": 12,
                                                                              "chunk_customers": 4096}})
    sim.project(config, checkpoint=tmp_path, keep_clv=False)
    result = sim.project(config, checkpoint=tmp_path, resume=True, keep_clv=True)
    assert result.timings["chunks_resumed"] == 0
    assert all("no per-customer CLVs" in reason for reason in result.timings["chunk_files_rejected"])
    assert len(result.clv["none"]) == 8192


def test_folder_rules_for_interrupted_and_complete_runs(tmp_path, capsys):
    path = tmp_path / "small.toml"
    path.write_text('name = "small"\n[population]\ncustomers = 8192\n[run]\nreplications = 1\nhorizon = 12\n'
                    'chunk_customers = 4096\n')
    out = tmp_path / "out"
    config = sim.load_config(path)
    sim.project(config, checkpoint=out)  # leaves chunk files and no manifest, like a killed run
    assert main(["run", str(path), "--out", str(out), "--resume", "--force"]) == 2
    assert "pass one of them" in capsys.readouterr().err
    # --force starts over: the old chunks are replaced, the run completes
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--no-figure", "--force"]) == 0
    assert "resumed" not in capsys.readouterr().out
    assert (out / MANIFEST).exists() and not (out / CHUNK_DIR).exists()
    # --resume on a complete result has nothing to do
    assert main(["run", str(path), "--out", str(out), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    # --resume on a fresh folder simply runs
    fresh = tmp_path / "fresh"
    assert main(["run", str(path), "--out", str(fresh), "--no-progress", "--no-figure", "--resume"]) == 0
    assert (fresh / MANIFEST).exists()
