"""Chunk files: a run's completed chunks on disk, so that an interrupted run can resume.

While ``sim run`` works, every completed chunk (:class:`sim.executors.ChunkResult`) is
written to ``<result folder>/.chunks/rep{r}_first{c}_n{n}.npz`` through
:func:`sim.results.atomic_write_bytes` (temporary file, ``fsync``, rename), so a file is
either complete or absent, whatever kills the process. ``sim run --resume`` loads the
chunks found there and simulates only the others; because the reduction adds chunks in
work-item order (:class:`sim.executors.ChunkReducer`), the result is bitwise identical to
an uninterrupted run. When the manifest has been written the chunk folder is removed.

A chunk file is trusted only if
* it is a NumPy ``.npz`` archive read with ``allow_pickle=False`` (no code can hide in it),
* its ``config_hash`` is the hash of the current config (:func:`config_hash`: every field
  that can change a number, the package version and this file format), so a chunk of
  another experiment, seed, horizon or model is never reused,
* it describes the expected work item, and
* its ``checksum`` (SHA-256 over every array's name, dtype, shape and bytes) matches.
Anything else (a truncated, corrupted or foreign file) is reported and recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np

from .executors import ChunkResult, WorkItem
from .results import atomic_write_bytes

__all__ = ["CHUNK_DIR", "FORMAT_VERSION", "ChunkStore", "config_hash", "arrays_checksum", "npz_bytes"]

#: Folder of the chunk files inside a result folder.
CHUNK_DIR = ".chunks"
#: Version of the chunk-file layout (part of the config hash).
FORMAT_VERSION = 1

#: Config fields that never change a number (excluded from the hash).
_IGNORED = (("run", "threads"),)


def config_hash(config) -> str:
    """SHA-256 (hex) identifying the numbers a config produces: its resolved values (minus
    ``run.threads``), the ``sim`` version and :data:`FORMAT_VERSION`."""
    from . import __version__

    data = config.model_dump(mode="json")
    for section, key in _IGNORED:
        data.get(section, {}).pop(key, None)
    text = json.dumps({"config": data, "sim": __version__, "format": FORMAT_VERSION}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def arrays_checksum(arrays: dict) -> str:
    """SHA-256 (hex) over the names, dtypes, shapes and bytes of ``arrays`` (sorted by name)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{value.dtype.str}|{value.shape}|".encode("utf-8"))
        digest.update(value.tobytes())
    return digest.hexdigest()


def npz_bytes(arrays: dict) -> bytes:
    """An ``.npz`` archive (deflate-compressed, no pickled objects) of ``arrays`` in memory,
    readable by ``np.load(..., allow_pickle=False)``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
    return buffer.getvalue()


class ChunkStore:
    """The chunk files of one run (one config) in ``<folder>/.chunks/``.

    Parameters
    ----------
    folder : path
        The result folder.
    config : ExperimentConfig
        The resolved config of the run (its :func:`config_hash` labels every file).

    Attributes
    ----------
    rejected : list of (Path, str)
        Chunk files found but not trusted, with the reason (they are recomputed).
    """

    def __init__(self, folder, config):
        self.folder = Path(folder)
        self.directory = self.folder / CHUNK_DIR
        self.hash = config_hash(config)
        self.rejected: list[tuple[Path, str]] = []

    def path(self, item: WorkItem) -> Path:
        """File of a work item."""
        item = WorkItem(*item)
        return self.directory / f"{item.name}_n{item.n_customers}.npz"

    def files(self) -> list[Path]:
        """Every chunk file present (any config)."""
        return sorted(self.directory.glob("*.npz")) if self.directory.is_dir() else []

    def save(self, result: ChunkResult) -> Path:
        """Write one completed chunk atomically (temporary file + fsync + rename)."""
        arrays = result.to_arrays()
        arrays["config_hash"] = np.frombuffer(bytes.fromhex(self.hash), dtype=np.uint8)
        arrays["checksum"] = np.frombuffer(bytes.fromhex(arrays_checksum(arrays)), dtype=np.uint8)
        return atomic_write_bytes(self.path(result.item), npz_bytes(arrays))

    def load(self, item: WorkItem, keep_clv: bool) -> ChunkResult | None:
        """The stored result of ``item``, or None if absent or not trustworthy (the reason
        of a rejection is added to :attr:`rejected`). ``keep_clv``: the caller needs the
        per-customer CLVs, so a file without them does not do."""
        path = self.path(item)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except Exception as error:  # noqa: BLE001 - any unreadable file is simply recomputed
            self.rejected.append((path, f"unreadable ({type(error).__name__}: {error})"))
            return None
        stored_checksum = arrays.pop("checksum", None)
        stored_hash = arrays.get("config_hash")
        if stored_checksum is None or stored_hash is None:
            self.rejected.append((path, "no checksum or config hash"))
            return None
        if bytes(np.asarray(stored_hash, dtype=np.uint8)).hex() != self.hash:
            self.rejected.append((path, "written for another config"))
            return None
        if bytes(np.asarray(stored_checksum, dtype=np.uint8)).hex() != arrays_checksum(arrays):
            self.rejected.append((path, "checksum mismatch (corrupted)"))
            return None
        try:
            result = ChunkResult.from_arrays(arrays)
        except (KeyError, ValueError, TypeError) as error:
            self.rejected.append((path, f"incomplete ({error})"))
            return None
        if tuple(result.item) != tuple(WorkItem(*item)):
            self.rejected.append((path, f"holds work item {tuple(result.item)}, not {tuple(item)}"))
            return None
        if keep_clv and result.clv is None:
            self.rejected.append((path, "has no per-customer CLVs, which this run keeps"))
            return None
        if not keep_clv:
            result.clv = None
        return result

    def remove(self) -> None:
        """Delete the chunk folder (after the run completed)."""
        if self.directory.is_dir():
            shutil.rmtree(self.directory, ignore_errors=True)
