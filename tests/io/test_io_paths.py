"""Where results may be written (sim.io.paths): never the root or home folder, never over someone
else's files, a complete result never overwritten without --force, default folders inside results/.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import sim
from sim.exceptions import ResultExistsError, UnsafeOutputError
from sim.io.paths import RUN_MARKER, check_output_dir, default_result_dir, is_protected_dir
from sim.io.results import MANIFEST, prepare_result_dir, save_result
from sim.model.sections import MAX_MAGNITUDE
from sim.tables.result import ProjectionResult

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


# ----------------------------------------------------------------------------- output paths


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
