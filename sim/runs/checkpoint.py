"""Chunk files: a run's completed chunks on disk, so that an interrupted run can resume.

While ``sim run`` works, every completed chunk (:class:`sim.tables.chunks.ChunkResult`) is
written to ``<result folder>/.chunks/rep{r}_first{c}_n{n}.npz`` through
:func:`sim.io.results.atomic_write_bytes` (temporary file, ``fsync``, rename), so a file is
either complete or absent, whatever kills the process. ``sim run --resume`` loads the
chunks found there and simulates only the others; because the reduction adds chunks in
work-item order (:class:`sim.tables.chunks.ChunkReducer`), the result is bitwise identical to
an uninterrupted run. When the manifest has been written the chunk folder is removed.

A chunk file is trusted only if

* it is a NumPy ``.npz`` archive read with ``allow_pickle=False`` (no code can hide in it),
* its ``config_hash`` is the hash of the current config (:func:`config_hash`: every field
  that can change a number, the package version, this file format, and the code that
  computes the numbers: the source text of the kernel, model, stream and policy-table
  modules and the numba and NumPy versions, :func:`code_fingerprint`), so a chunk of
  another experiment, seed, horizon, model or kernel is never reused,
* it describes the expected work item, and
* its ``checksum`` (SHA-256 over every array's name, dtype, shape and bytes) matches, and
* every array has the dtype and shape a chunk of this config has (:meth:`ChunkStore.load`).

Anything else (a truncated, corrupted, crafted or foreign file) is reported and recomputed.
A temporary file left by a write that was killed (``.<name>.npz.<random>.tmp``) is never
read as a chunk; resuming deletes it (:meth:`ChunkStore.discard_temporaries`).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np

from sim.io.results import atomic_write_bytes
from sim.tables.chunks import ChunkResult, WorkItem
from sim.tables.partials import BLOCK, ChunkPartials

__all__ = [
    "CHUNK_DIR",
    "FORMAT_VERSION",
    "ChunkStore",
    "config_hash",
    "code_fingerprint",
    "arrays_checksum",
    "npz_bytes",
]

#: Folder of the chunk files inside a result folder.
CHUNK_DIR = ".chunks"
#: Version of the chunk-file layout (part of the config hash).
FORMAT_VERSION = 1

#: Config fields that never change a number (excluded from the hash).
_IGNORED = (("run", "threads"),)
#: Folder of the modules below (a module attribute, so that tests can point it elsewhere).
_SOURCE_DIR = Path(__file__).resolve().parents[1]
#: Modules whose source decides a chunk's numbers: the kernel, the model equations and
#: tables, the random streams and the policy tables.
_CODE_MODULES = (
    "engines/core.py",
    "engines/block.py",
    "engines/lanes.py",
    "model/equations.py",
    "model/exponential.py",
    "model/streams.py",
    "model/policies.py",
    "model/step.py",
    "tables/partials.py",
)


def code_fingerprint() -> dict:
    """What besides the config decides a chunk's numbers: SHA-256 of the source text of
    :data:`_CODE_MODULES` (read now, so an edited kernel is seen) and the numba and NumPy
    versions.
    """
    import numba

    digest = hashlib.sha256()
    for name in _CODE_MODULES:
        source = (_SOURCE_DIR / name).read_bytes()
        digest.update(f"{name}|{len(source)}|".encode())
        digest.update(source)
    return {"source": digest.hexdigest(), "numba": numba.__version__, "numpy": np.__version__}


def config_hash(config) -> str:
    """SHA-256 (hex) identifying the numbers a config produces: its resolved values (minus
    ``run.threads``), the ``sim`` version, :data:`FORMAT_VERSION` and :func:`code_fingerprint`
    (kernel source, numba and NumPy versions).
    """
    from sim.io.results import sim_version

    data = config.model_dump(mode="json")
    for section, key in _IGNORED:
        data.get(section, {}).pop(key, None)
    text = json.dumps(
        {"config": data, "sim": sim_version(), "format": FORMAT_VERSION, "code": code_fingerprint()},
        sort_keys=True,
        separators=(",", ":"),
    )
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
    readable by ``np.load(..., allow_pickle=False)``.
    """
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
        self.n_policies = len(config.policy_names)
        self.horizon = int(config.run.horizon)
        self.rejected: list[tuple[Path, str]] = []

    def path(self, item: WorkItem) -> Path:
        """File of a work item."""
        item = WorkItem(*item)
        return self.directory / f"{item.name}_n{item.n_customers}.npz"

    def files(self) -> list[Path]:
        """Every chunk file present (any config)."""
        return sorted(self.directory.glob("*.npz")) if self.directory.is_dir() else []

    def foreign_files(self) -> list[Path]:
        """Chunk files that name another config, seed or code version in their hash (files
        that cannot be read at all are not listed: they are corrupted, and recomputed).
        """
        foreign = []
        for path in self.files():
            try:
                with np.load(path, allow_pickle=False) as archive:
                    stored = archive["config_hash"] if "config_hash" in archive.files else None
                    stored = None if stored is None else bytes(np.asarray(stored, dtype=np.uint8)).hex()
            except Exception:  # noqa: BLE001 - unreadable: a corrupted chunk, recomputed on resume
                continue
            if stored is not None and stored != self.hash:
                foreign.append(path)
        return foreign

    def save(self, result: ChunkResult) -> Path:
        """Write one completed chunk atomically (temporary file + fsync + rename)."""
        arrays = result.to_arrays()
        arrays["config_hash"] = np.frombuffer(bytes.fromhex(self.hash), dtype=np.uint8)
        arrays["checksum"] = np.frombuffer(bytes.fromhex(arrays_checksum(arrays)), dtype=np.uint8)
        return atomic_write_bytes(self.path(result.item), npz_bytes(arrays))

    def load(self, item: WorkItem, keep_clv: bool) -> ChunkResult | None:
        """The stored result of ``item``, or None if absent or not trustworthy (the reason
        of a rejection is added to :attr:`rejected`). ``keep_clv``: the caller needs the
        per-customer CLVs, so a file without them does not do.
        """
        path = self.path(item)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except Exception as error:  # noqa: BLE001 - any unreadable file is simply recomputed
            self.rejected.append((path, f"unreadable ({type(error).__name__}: {error})"))
            return None
        try:
            reason = self._untrusted(arrays, WorkItem(*item))
            result = None if reason else ChunkResult.from_arrays(arrays)
        except Exception as error:  # noqa: BLE001 - a crafted file must be recomputed, never a traceback
            reason = f"malformed ({type(error).__name__}: {error})"
        if reason:
            self.rejected.append((path, reason))
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

    def _untrusted(self, arrays: dict, item: WorkItem) -> str | None:
        """Why ``arrays`` (read from the file of ``item``; its ``checksum`` is popped) is not a
        chunk of this config, or None. Checks the hash and checksum, then every array's
        dtype and shape against those the kernel produces for ``item``.
        """
        stored_checksum = arrays.pop("checksum", None)
        stored_hash = arrays.get("config_hash")
        if stored_checksum is None or stored_hash is None:
            return "no checksum or config hash"
        for name, value in (("config_hash", stored_hash), ("checksum", stored_checksum)):
            if value.dtype != np.uint8 or value.shape != (32,):
                return f"malformed {name} (dtype {value.dtype}, shape {value.shape}; expected uint8 (32,))"
        if bytes(stored_hash).hex() != self.hash:
            return "written for another config or another version of the code"
        if bytes(stored_checksum).hex() != arrays_checksum(arrays):
            return "checksum mismatch (corrupted)"
        expected = {"item": (np.dtype(np.int64), (3,))}
        blocks = (item.n_customers + BLOCK - 1) // BLOCK
        template = ChunkPartials(blocks, self.n_policies, self.horizon, 0)
        for name in ChunkPartials.FIELDS:
            value = getattr(template, name)
            expected[f"partial_{name}"] = (value.dtype, value.shape)
        if "clv" in arrays:
            expected["clv"] = (np.dtype(np.float64), (self.n_policies, item.n_customers))
        expected["sketch_policies"] = (np.dtype(np.int64), (1,))
        rows = arrays.get("sketch_policy")
        rows = rows.shape if isinstance(rows, np.ndarray) and rows.ndim == 1 else (-1,)
        for name in ("sketch_policy", "sketch_keys", "sketch_counts"):
            expected[name] = (np.dtype(np.int64), rows)
        extra = sorted(set(arrays) - set(expected) - {"config_hash"})
        if extra:
            return f"unexpected arrays {extra}"
        for name, (dtype, shape) in expected.items():
            if name not in arrays:
                return f"incomplete (no {name!r})"
            value = arrays[name]
            if value.dtype != dtype or value.shape != shape:
                return (
                    f"malformed {name!r} (dtype {value.dtype}, shape {value.shape}; expected {dtype}, "
                    f"shape {shape})"
                )
        if int(arrays["sketch_policies"][0]) != self.n_policies:
            return f"sketch of {int(arrays['sketch_policies'][0])} policies, not {self.n_policies}"
        policy = arrays["sketch_policy"]
        if policy.size and (policy.min() < 0 or policy.max() >= self.n_policies):
            return "sketch rows of unknown policies"
        return None

    def discard_temporaries(self) -> list[Path]:
        """Delete the temporary files that writes killed mid-way left in the chunk folder
        (never chunk files: their names end in ``.tmp``, not ``.npz``); returns them.
        """
        if not self.directory.is_dir():
            return []
        leftovers = sorted(self.directory.glob(".*.npz.*.tmp"))
        for path in leftovers:
            path.unlink(missing_ok=True)
        return leftovers

    def remove(self) -> None:
        """Delete the chunk folder (after the run completed)."""
        if self.directory.is_dir():
            shutil.rmtree(self.directory, ignore_errors=True)
