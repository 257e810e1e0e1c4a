"""Where results may be written: rules that keep output from landing somewhere by accident.

:func:`sim.io.results.prepare_result_dir` applies :func:`check_output_dir` before any work
starts, so the rules hold for ``sim run`` and for every ``result.save(directory)`` from
Python alike:

1. **Never the filesystem root, the home folder or a folder above it** (``/``, ``~``,
   ``/home``), not even with ``force``: a result needs a folder of its own, and ``force``
   means "replace my earlier result", not "scatter tables over my home folder".
2. **An existing path that is not a folder** is refused.
3. **An existing folder with files in it that is not a sim result folder** — it has neither
   a sim ``manifest.json`` (a complete result; :func:`is_sim_manifest`) nor :data:`RUN_MARKER`
   (left by a run that was interrupted) — is refused unless ``force``: our tables would be
   mixed with someone else's files. Hidden entries (names starting with ``.``) do not count
   as files. Even with ``force``, such a folder is refused while it holds a file of a type
   the command writes (:data:`RUN_SUFFIXES` for ``sim run`` and ``sim optimize``, e.g.
   someone's ``summary.csv`` or ``manifest.json``): ``force`` lets a result sit beside other
   files, never overwrite them.
4. **A complete result folder** (one with ``manifest.json``) is refused unless ``force``
   (:class:`sim.exceptions.ResultExistsError`, raised by :func:`sim.io.results.prepare_result_dir`).

Without ``--out``, ``sim run`` writes to ``results/<experiment name>``
(:func:`default_result_dir`): the name is a single path component (letters, digits, ``_``
and ``-``; :class:`sim.model.config.ExperimentConfig` enforces the pattern, so no ``..``, no
``/`` and no absolute names), and the folder must resolve inside ``results/`` — a
symbolic link ``results/<name>`` that leads elsewhere is refused unless ``force``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sim.exceptions import UnsafeOutputError

__all__ = [
    "RESULTS_ROOT",
    "RUN_SUFFIXES",
    "RUN_MARKER",
    "check_output_dir",
    "default_result_dir",
    "is_protected_dir",
    "is_sim_manifest",
]

#: Folder (relative to the working directory) that holds ``results/<experiment name>``.
RESULTS_ROOT = Path("results")
#: Hidden file written into a result folder when a run starts; with ``manifest.json``
#: absent it marks the folder as an interrupted sim run (safe to write into again).
RUN_MARKER = ".sim-result"
_MANIFEST = "manifest.json"
#: File types ``sim run`` and ``sim optimize`` write into a result folder (tables, figures,
#: the manifest): in a folder that is not a sim result, files of these types are never
#: replaced, not even with ``force`` (rule 3). Other commands pass their own.
RUN_SUFFIXES = (".csv", ".json", ".png")
_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


def _resolved(path: Path) -> Path:
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError):  # a symlink loop, or no home folder to expand
        return Path(os.path.abspath(path))


def is_protected_dir(path: str | Path) -> bool:
    """True for the filesystem root, the user's home folder and every folder above it
    (rule 1 of :mod:`sim.io.paths`), after following symbolic links.
    """
    target = _resolved(Path(path))
    if target == Path(target.anchor):
        return True
    try:
        home = _resolved(Path.home())
    except (RuntimeError, KeyError, OSError):  # no home folder known
        return False
    return target == home or target in home.parents


def is_sim_manifest(path: str | Path) -> bool:
    """Whether ``path`` is a manifest written by sim (a JSON object whose ``versions`` name
    the ``sim`` package, as every sim command writes), not another tool's ``manifest.json``.
    """
    import json

    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(manifest, dict)
        and isinstance(manifest.get("versions"), dict)
        and "sim" in manifest["versions"]
    )


def _foreign_entries(directory: Path) -> list[str]:
    """Visible entries of a folder that is not a sim result folder (empty if it is one)."""
    names = sorted(entry.name for entry in directory.iterdir())
    if RUN_MARKER in names or (_MANIFEST in names and is_sim_manifest(directory / _MANIFEST)):
        return []
    return [name for name in names if not name.startswith(".")]


def check_output_dir(
    directory: str | Path, *, force: bool = False, suffixes: tuple[str, ...] = RUN_SUFFIXES
) -> Path:
    """Check that results may be written into ``directory`` (rules 1-3 of :mod:`sim.io.paths`).

    Parameters
    ----------
    directory
        The result folder (it may not exist yet).
    force
        Allow writing into an existing folder that holds other files, none of which a
        result could replace (rule 3). Rules 1 and 2 hold regardless.
    suffixes
        The file types the command writes (rule 3): :data:`RUN_SUFFIXES` by default.

    Returns
    -------
    Path
        ``directory`` as a :class:`~pathlib.Path` (``~`` expanded).

    Raises
    ------
    UnsafeOutputError
        If a rule refuses the folder; the message says which and what to do instead.
    """
    directory = Path(directory).expanduser()
    if is_protected_dir(directory):
        raise UnsafeOutputError(
            f"refusing to write results into {directory} ({_resolved(directory)}): the filesystem root and "
            "the home folder (or a folder above it) are never result folders; choose a folder of its own "
            "with --out, e.g. results/<name>"
        )
    if directory.exists() and not directory.is_dir():
        raise UnsafeOutputError(f"{directory} exists and is not a folder; choose another --out")
    foreign = _foreign_entries(directory) if directory.is_dir() else []
    replaceable = [name for name in foreign if Path(name).suffix.lower() in suffixes]
    if replaceable:
        raise UnsafeOutputError(
            f"{directory} is not a sim result folder and holds files a result could overwrite "
            f"({_shown(replaceable)}); --force never replaces other files: choose an empty or new folder "
            "with --out, e.g. a subfolder"
        )
    if foreign and not force:
        raise UnsafeOutputError(
            f"{directory} already holds files that are not a sim result ({_shown(foreign)}); choose an empty "
            "or new folder with --out, or pass --force to write beside them"
        )
    return directory


def _shown(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def default_result_dir(name: str, *, root: str | Path = RESULTS_ROOT, force: bool = False) -> Path:
    """``root / name``, the result folder of ``sim run`` without ``--out``.

    Parameters
    ----------
    name
        The experiment name (``ExperimentConfig.name``): one path component of letters,
        digits, ``_`` and ``-``.
    root
        The folder of all results, ``results/`` by default.
    force
        Accept a ``root / name`` that is a symbolic link leading outside ``root``.

    Raises
    ------
    UnsafeOutputError
        If ``name`` is not a single safe path component, or ``root / name`` resolves
        outside ``root`` (through a symbolic link) and ``force`` is false.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise UnsafeOutputError(
            f"experiment name {name!r} cannot name a result folder: use letters, digits, '_' and '-' only"
        )
    root = Path(root)
    candidate = root / name
    inside = _resolved(root)
    target = _resolved(candidate)
    if target != inside and inside not in target.parents and not force:
        raise UnsafeOutputError(
            f"{candidate} leads to {target}, outside {root}/ (a symbolic link?); pass --out {target} "
            "to write there, or --force"
        )
    return candidate
