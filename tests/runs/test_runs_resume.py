"""Chunked execution and resume (sim.runs.checkpoint; issue 6 item 5, issue 7 item 4).

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
from sim.cli.main import main
from sim.io.results import MANIFEST
from sim.runs.checkpoint import CHUNK_DIR, ChunkStore, npz_bytes
from sim.runs.executors import plan_work
from sim.tables import chunks

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
    file exists, then resume it.
    """
    out = tmp_path / "killed"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim.cli.main",
            "run",
            str(config_file),
            "--out",
            str(out),
            "--no-progress",
            "--no-figure",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
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
    # The atomic writer never leaves a half-written chunk file: if the kill hit a write, at
    # most that one temporary (.<name>.npz.<random>.tmp, not *.npz) is left, and every
    # *.npz present is complete and trusted.
    temporaries = sorted(chunks.glob(".*.tmp"))
    assert len(temporaries) <= 1 and not any(path.suffix == ".npz" for path in temporaries)
    config = sim.load_config(config_file)
    store = ChunkStore(out, config)
    items = {store.path(item).name: item for item in plan_work(config)}
    assert all(store.load(items[path.name], keep_clv=False) is not None for path in done), store.rejected
    # such a leftover temporary is ignored and removed by the resume (a truncated copy of a chunk here)
    (chunks / f".{done[0].name}.k1ll3d.tmp").write_bytes(done[0].read_bytes()[:200])

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
    stray file: each is rejected with its reason and recomputed; the numbers are unchanged.
    """
    config = sim.config_from_dict(
        {
            "population": {"customers": 24_576},
            "run": {"replications": 1, "horizon": 36, "chunk_customers": 4096, "seed": 5},
        }
    )
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
    keep_clv=True must recompute them rather than return a result without CLVs.
    """
    monkeypatch.setattr(chunks, "CLV_KEEP_LIMIT", 0)
    config = sim.config_from_dict(
        {
            "population": {"customers": 8192},
            "run": {"replications": 1, "horizon": 12, "chunk_customers": 4096},
        }
    )
    sim.project(config, checkpoint=tmp_path, keep_clv=False)
    result = sim.project(config, checkpoint=tmp_path, resume=True, keep_clv=True)
    assert result.timings["chunks_resumed"] == 0
    assert all("no per-customer CLVs" in reason for reason in result.timings["chunk_files_rejected"])
    assert len(result.clv["none"]) == 8192


def test_folder_rules_for_interrupted_and_complete_runs(tmp_path, capsys):
    path = tmp_path / "small.toml"
    path.write_text(
        'name = "small"\n[population]\ncustomers = 8192\n[run]\nreplications = 1\nhorizon = 12\n'
        "chunk_customers = 4096\n"
    )
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


def _small_config(seed=5):
    return sim.config_from_dict(
        {
            "population": {"customers": 16_384},
            "run": {"replications": 1, "horizon": 24, "chunk_customers": 4096, "seed": seed},
        }
    )


def _assert_same(a, b):
    for name in a.TABLES:
        pd.testing.assert_frame_equal(a.table(name), b.table(name), check_exact=True)
    for policy in a.clv:
        assert np.array_equal(a.clv[policy], b.clv[policy])


def test_chunks_of_another_code_version_are_recomputed(tmp_path, monkeypatch):
    """The hash guarding chunk files covers the kernel's source (core, model, _rng, policies)
    and the numba/NumPy versions: a chunk written under other code is reported and
    recomputed, never trusted.
    """
    from sim.runs import checkpoint

    config = _small_config()
    whole = sim.project(config, keep_clv=True)
    sim.project(config, checkpoint=tmp_path / "run", keep_clv=True)
    base = checkpoint.config_hash(config)
    # 1: the same files under an edited kernel source (a copy of sim/ with one comment added)
    edited = tmp_path / "edited"
    edited.mkdir()
    for name in checkpoint._CODE_MODULES:
        (edited / name).parent.mkdir(parents=True, exist_ok=True)
        (edited / name).write_bytes((checkpoint._SOURCE_DIR / name).read_bytes())
    with monkeypatch.context() as patch:
        patch.setattr(checkpoint, "_SOURCE_DIR", edited)
        assert checkpoint.config_hash(config) == base  # same text, same hash
        for name in checkpoint._CODE_MODULES:
            (edited / name).write_bytes((checkpoint._SOURCE_DIR / name).read_bytes() + b"\n# changed\n")
            assert checkpoint.config_hash(config) != base, name
            (edited / name).write_bytes((checkpoint._SOURCE_DIR / name).read_bytes())
        kernel = edited / "engines" / "core.py"
        kernel.write_bytes(kernel.read_bytes() + b"\n# changed\n")
        resumed = sim.project(config, checkpoint=tmp_path / "run", resume=True, keep_clv=True)
    assert resumed.timings["chunks_resumed"] == 0
    rejected = resumed.timings["chunk_files_rejected"]
    assert len(rejected) == 4 and all("another version of the code" in reason for reason in rejected)
    _assert_same(whole, resumed)
    # 2: another numba or NumPy version (the resume above rewrote the chunks under the edited
    # source: write them again under the real one first)
    sim.project(config, checkpoint=tmp_path / "run", keep_clv=True)
    import numba

    for module in (numba, np):
        with monkeypatch.context() as patch:
            patch.setattr(module, "__version__", "0.0.0+other")
            assert checkpoint.config_hash(config) != base
            again = sim.project(config, checkpoint=tmp_path / "run", resume=True, keep_clv=True)
        assert again.timings["chunks_resumed"] == 0 and len(again.timings["chunk_files_rejected"]) == 4
        _assert_same(whole, again)
        sim.project(config, checkpoint=tmp_path / "run", keep_clv=True)
    trusted = sim.project(config, checkpoint=tmp_path / "run", resume=True, keep_clv=True)
    assert trusted.timings["chunks_resumed"] == 4 and trusted.timings["chunk_files_rejected"] == []


def _crafted(arrays, **changes):
    """A chunk's arrays with some replaced (None: removed), re-sealed with a valid checksum and
    the right config hash, as someone writing files by hand could.
    """
    from sim.runs.checkpoint import arrays_checksum

    arrays = {name: value for name, value in arrays.items() if name != "checksum"}
    for name, value in changes.items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    arrays["checksum"] = np.frombuffer(bytes.fromhex(arrays_checksum(arrays)), dtype=np.uint8)
    return npz_bytes(arrays)


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda a: {"config_hash": np.array([a["config_hash"].tobytes().hex()])}, "malformed config_hash"),
        (lambda a: {"config_hash": a["config_hash"].astype(np.float64)}, "malformed config_hash"),
        (lambda a: {"item": a["item"].astype(np.float64)}, "malformed 'item'"),
        (lambda a: {"item": np.array(["0", "0", "4096"])}, "malformed 'item'"),
        (lambda a: {"partial_money": a["partial_money"].astype(np.float32)}, "malformed 'partial_money'"),
        (lambda a: {"partial_money": a["partial_money"][:, :1]}, "malformed 'partial_money'"),
        (
            lambda a: {"partial_occupancy": a["partial_occupancy"].astype(np.float64)},
            "malformed 'partial_occupancy'",
        ),
        (lambda a: {"clv": a["clv"].reshape(-1)}, "malformed 'clv'"),
        (lambda a: {"clv": np.array(["x"] * a["clv"].size).reshape(a["clv"].shape)}, "malformed 'clv'"),
        (lambda a: {"sketch_keys": a["sketch_keys"][:-1]}, "malformed 'sketch_keys'"),
        (lambda a: {"sketch_policy": a["sketch_policy"].reshape(1, -1)}, "malformed 'sketch_policy'"),
        (lambda a: {"sketch_policy": a["sketch_policy"] + 7}, "sketch rows of unknown policies"),
        (lambda a: {"sketch_policies": np.array([9])}, "sketch of 9 policies"),
        (lambda a: {"partial_pair_wins": None}, "incomplete (no 'partial_pair_wins')"),
        (lambda a: {"extra": np.zeros(3)}, "unexpected arrays ['extra']"),
    ],
)
def test_crafted_chunk_files_are_rejected_not_a_traceback(tmp_path, change, reason):
    """A file with a valid checksum and config hash but arrays of the wrong dtype or shape
    (which would otherwise raise in np.asarray or broadcast silently into the sums) is
    reported and recomputed.
    """
    config = _small_config()
    whole = sim.project(config, keep_clv=True)
    folder = tmp_path / "run"
    sim.project(config, checkpoint=folder, keep_clv=True)
    path = ChunkStore(folder, config).path(plan_work(config)[1])
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    path.write_bytes(_crafted(arrays, **change(arrays)))
    resumed = sim.project(config, checkpoint=folder, resume=True, keep_clv=True)
    assert resumed.timings["chunks_resumed"] == 3
    rejected = resumed.timings["chunk_files_rejected"]
    assert len(rejected) == 1 and path.name in rejected[0] and reason in rejected[0], rejected
    _assert_same(whole, resumed)


def test_resume_loads_trusted_chunks_one_at_a_time_in_turn(tmp_path, monkeypatch):
    """Memory O(chunk) on resume: with chunk 1 of 8 missing, no loaded chunk is kept waiting for
    it; when the reducer adds a chunk, it is the only loaded chunk alive. The numbers stay
    bitwise those of an uninterrupted run, and a leftover temporary file is removed.
    """
    import weakref

    from sim.runs import checkpoint
    from sim.tables import chunks

    config = sim.config_from_dict(
        {
            "population": {"customers": 16_384},
            "run": {"replications": 2, "horizon": 24, "chunk_customers": 4096, "seed": 9},
        }
    )
    whole = sim.project(config, keep_clv=True)
    folder = tmp_path / "run"
    sim.project(config, checkpoint=folder, keep_clv=True)
    store = ChunkStore(folder, config)
    items = plan_work(config)
    store.path(items[1]).unlink()
    leftover = store.directory / f".{store.path(items[1]).name}.abc123.tmp"
    leftover.write_bytes(b"half a chunk")

    loaded = []
    load, add = checkpoint.ChunkStore.load, chunks.ChunkReducer.add

    def tracking_load(self, item, keep_clv):
        result = load(self, item, keep_clv)
        if result is not None:
            loaded.append(weakref.ref(result))
        return result

    alive_at_add = []

    def tracking_add(self, chunk):
        alive_at_add.append(sum(ref() is not None for ref in loaded))
        return add(self, chunk)

    monkeypatch.setattr(checkpoint.ChunkStore, "load", tracking_load)
    monkeypatch.setattr(chunks.ChunkReducer, "add", tracking_add)
    resumed = sim.project(config, checkpoint=folder, resume=True, keep_clv=True)
    assert resumed.timings["chunks_resumed"] == 7 and resumed.timings["chunk_files_rejected"] == []
    assert len(alive_at_add) == 8 and max(alive_at_add) <= 1, alive_at_add
    assert not leftover.exists()
    _assert_same(whole, resumed)
