"""Writing results safely: atomic files, and a manifest written last that marks a run complete.

A result folder holds one CSV per tidy table, the figures, and ``manifest.json`` (resolved
config, seed, package versions, git commit, command, timings, and the SHA-256 of every
file). A folder whose manifest exists is complete and is never overwritten without
``force=True``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from sim.exceptions import ResultExistsError

__all__ = [
    "MANIFEST",
    "atomic_write_bytes",
    "atomic_write_text",
    "package_versions",
    "sim_version",
    "git_commit",
    "save_result",
    "prepare_result_dir",
]

#: Name of the manifest file; written last, it marks a result folder complete.
MANIFEST = "manifest.json"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename,
    so that a reader never sees a half-written file (POSIX ``rename`` is atomic).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    """Flush a folder's entry list, so that a rename survives a power loss (POSIX); a
    no-op where folders cannot be opened (Windows).
    """
    try:
        handle = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def sim_version() -> str:
    """The installed version of the ``sim`` package ("0+unknown" when run from a source tree
    that is not installed).
    """
    try:
        return metadata.version("sim")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages that can change a number."""
    versions = {"python": platform.python_version()}
    for name in ("sim", "numpy", "numba", "llvmlite", "scipy", "pandas", "simpy", "pydantic", "matplotlib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(where: str | Path | None = None) -> dict[str, Any]:
    """The git commit of the source tree, if any, and whether it had uncommitted changes to
    tracked files outside ``results/`` (the outputs, such as a committed result being
    regenerated, do not make the code dirty).
    """
    where = Path(where) if where else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top,exclude)results"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return {"commit": commit, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def prepare_result_dir(directory: str | Path, *, force: bool = False) -> Path:
    """Create ``directory`` for a new result; refuse a complete one unless ``force``.

    The output-path rules of :mod:`sim.io.paths` are checked first (never the root or home
    folder; not someone else's non-empty folder unless ``force``); a new or reused folder
    gets the :data:`sim.io.paths.RUN_MARKER` file, which marks it as a sim result folder.

    With ``force``, a complete result is replaced as a whole: the files its manifest lists
    (plain names in the folder itself, unchanged since: same SHA-256) are removed with the
    manifest, so no table or figure of the old run is left beside the new one; files the
    manifest does not list, or that were edited since, are kept.

    Raises
    ------
    ResultExistsError
        If ``directory/manifest.json`` exists and ``force`` is false.
    sim.exceptions.UnsafeOutputError
        (a :class:`~sim.exceptions.ResultExistsError`) if a rule of :mod:`sim.io.paths` refuses the folder.
    """
    from sim.io.paths import RUN_MARKER, check_output_dir

    directory = check_output_dir(directory, force=force)
    manifest = directory / MANIFEST
    if manifest.exists():
        if not force:
            raise ResultExistsError(
                f"{directory} already holds a complete result (it has {MANIFEST}); "
                "choose another --out or pass --force to overwrite it"
            )
        _remove_listed_files(directory, manifest)  # no old table or figure stays beside the new result
        manifest.unlink()  # the folder is incomplete until the new manifest is written
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / RUN_MARKER).exists():
        atomic_write_text(directory / RUN_MARKER, "a sim result folder; manifest.json marks it complete\n")
    return directory


def _remove_listed_files(directory: Path, manifest: Path) -> None:
    """Remove the files a sim ``manifest`` lists under ``"files"`` (``{name: SHA-256}``) that
    are still what it recorded: plain, non-hidden names of ``directory`` itself, regular
    files (no path, no link, nothing outside) whose SHA-256 matches. Another tool's
    manifest, or a file changed since, is left alone.
    """
    from sim.io.paths import is_sim_manifest

    if not is_sim_manifest(manifest):
        return
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8")).get("files") or {}
    except (OSError, ValueError, AttributeError):
        return  # an unreadable manifest lists nothing
    if not isinstance(listed, dict):
        return
    for name, digest in listed.items():
        if not isinstance(name, str) or Path(name).name != name or name.startswith(".") or name == MANIFEST:
            continue
        path = directory / name
        if path.is_file() and not path.is_symlink() and isinstance(digest, str) and _sha256(path) == digest:
            path.unlink()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_result(
    result,
    directory,
    *,
    command: str | None = None,
    force: bool = False,
    extra_manifest: dict | None = None,
    figures: dict | None = None,
) -> Path:
    """Write a result's tables as CSV, then ``manifest.json`` last.

    Parameters
    ----------
    result
        A :class:`sim.ProjectionResult` (anything with ``TABLES``, ``table(name)``,
        ``config`` and ``timings``).
    directory
        Target folder; created if needed.
    command
        The command line that produced the result (recorded in the manifest).
    force
        Overwrite a complete result folder.
    extra_manifest
        More entries for the manifest (e.g. the engine, figure names).
    figures
        ``{file name: matplotlib Figure}`` saved (PNG) before the manifest.
    """
    directory = prepare_result_dir(directory, force=force)
    written = []
    for name in result.TABLES:
        frame = result.table(name)
        path = atomic_write_text(directory / f"{name}.csv", frame.to_csv(index=False))
        written.append(path)
    for file_name, figure in (figures or {}).items():
        import io

        buffer = io.BytesIO()
        figure.savefig(
            buffer, format=Path(file_name).suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight"
        )
        written.append(atomic_write_bytes(directory / file_name, buffer.getvalue()))
    config = result.config
    manifest = {
        "experiment": config.name,
        "complete": True,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else " ".join(sys.argv),
        "seed": config.run.seed,
        "config": config.to_toml_dict(),
        "versions": package_versions(),
        "git": git_commit(),
        "platform": {"machine": platform.machine(), "system": platform.system(), "cpus": os.cpu_count()},
        "timings": result.timings,
        "files": {path.name: _sha256(path) for path in written},
    }
    manifest.update(extra_manifest or {})
    atomic_write_text(
        directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n"
    )
    return directory
