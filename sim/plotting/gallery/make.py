"""``make_figures``: build, draw and write every figure (PNG, SVG, the CSV of the data drawn,
the caption), then the index (``README.md``) and ``manifest.json``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sim.io.paths import RUN_MARKER
from sim.plotting.gallery.kinds import draw_figure, figure_caption, figure_data, load_figure_specs
from sim.plotting.gallery.spec import DEFAULT_CONFIG_DIR, DEFAULT_OUT, DEFAULT_QUICK_OUT

__all__ = [
    "FigureRecord",
    "make_figures",
    "check_threads",
]


@dataclasses.dataclass
class FigureRecord:
    """What :func:`make_figures` made for one figure (one entry of ``manifest.json``)."""

    name: str
    number: int
    kind: str
    title: str
    caption: str
    status: str
    files: list
    command: str
    quick: bool
    sizes: dict
    seconds: float
    created: str
    config: str = ""


def _command(name: str | None, quick: bool, out: Path, config_dir: Path) -> str:
    parts = ["sim", "figures"]
    if quick:
        parts.append("--quick")
    if name is not None:
        parts += ["--only", name]
    if out != (DEFAULT_QUICK_OUT if quick else DEFAULT_OUT):
        parts += ["--out", str(out)]
    if config_dir != DEFAULT_CONFIG_DIR:
        parts += ["--configs", str(config_dir)]
    return " ".join(shlex.quote(part) for part in parts)


def make_figures(
    out: str | Path | None = None,
    *,
    quick: bool = False,
    only: Sequence[str] | None = None,
    config_dir: str | Path = DEFAULT_CONFIG_DIR,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> list[FigureRecord]:
    """Regenerate figures: PNG, SVG, CSV of the plotted data and caption, plus the index.

    Parameters
    ----------
    out
        Output folder (default ``results/figures``, or ``results/figures-quick`` with
        ``quick``). Files of the figures made are overwritten; the index
        (``README.md``, ``manifest.json``) keeps the entries of figures not remade.
    quick
        Small sizes (for CI and notebooks).
    only
        Figure names (file stems of ``config_dir``) to make; all if ``None``.
    config_dir
        Folder of the figure TOML files.
    threads
        numba threads (never changes the numbers).
    log
        Called with one progress line per figure (e.g. ``print``).

    Returns
    -------
    list of FigureRecord
        One per figure made, in figure-number order.

    Raises
    ------
    ConfigError
        For a bad figure config (before any simulation).
    """
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # a script or the CLI: no display needed
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.io.results import atomic_write_text, git_commit, package_versions
    from sim.plotting.style import save_figure

    config_dir = Path(config_dir)
    out = Path(out) if out is not None else (DEFAULT_QUICK_OUT if quick else DEFAULT_OUT)
    check_threads(threads)
    specs = load_figure_specs(config_dir, only)  # validates everything first
    out.mkdir(parents=True, exist_ok=True)
    if not (out / RUN_MARKER).exists():  # a sim folder from now on, even if this run is interrupted
        atomic_write_text(out / RUN_MARKER, "a sim figures folder; manifest.json marks it complete\n")
    records = []
    started_all = time.perf_counter()
    cpu_started = time.process_time()
    for spec in specs:
        started = time.perf_counter()
        data = figure_data(spec, quick=quick, threads=threads)
        files = []
        if data.status == "ok":
            caption = figure_caption(spec, data)
            figure = draw_figure(spec, data)
            files += [path.name for path in save_figure(figure, out / f"{spec.name}.png")]
            plt.close(figure)
            files.append(atomic_write_text(out / f"{spec.name}.csv", data.table.to_csv(index=False)).name)
        else:
            caption = f"{spec.title}: {data.status}."
            for suffix in (".png", ".svg", ".csv"):
                (out / f"{spec.name}{suffix}").unlink(missing_ok=True)
        files.append(
            atomic_write_text(
                out / f"{spec.name}.txt", f"Figure {spec.number}. {spec.title}\n\n{caption}\n"
            ).name
        )
        seconds = time.perf_counter() - started
        sizes = {**spec.sizes(quick), "params": spec.quick["params"] if quick else spec.full["params"]}
        record = FigureRecord(
            name=spec.name,
            number=spec.number,
            kind=spec.kind,
            title=spec.title,
            caption=caption,
            status=data.status,
            files=files,
            command=_command(spec.name, quick, out, config_dir),
            quick=quick,
            sizes=sizes,
            seconds=round(seconds, 2),
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            config=_relative(spec.path, out),
        )
        records.append(record)
        if log is not None:
            log(f"  {spec.number:>2}. {spec.name:<22} {data.status:<8} {seconds:6.1f} s")
    total = time.perf_counter() - started_all
    cpu = time.process_time() - cpu_started
    manifest_path = out / "manifest.json"
    previous = {}
    if manifest_path.exists():
        try:
            previous = {entry["name"]: entry for entry in json.loads(manifest_path.read_text())["figures"]}
        except (ValueError, KeyError, TypeError):
            previous = {}
    entries = {**previous, **{record.name: dataclasses.asdict(record) for record in records}}
    manifest = {
        "command": _command(",".join(only) if only else None, quick, out, config_dir),
        "quick": quick,
        "configs": str(config_dir),
        "configs_link": _relative(config_dir, out) + "/",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(total, 1),
        "cpu_seconds": round(cpu, 1),
        "versions": package_versions(),
        "git": git_commit(),
        "platform": {"machine": platform.machine(), "system": platform.system(), "cpus": os.cpu_count()},
        "figures": sorted(entries.values(), key=lambda entry: entry["number"]),
    }
    if not only:
        manifest["full_run_wall_seconds"] = round(total, 1)
        manifest["full_run_cpu_seconds"] = round(cpu, 1)
    else:
        previous_manifest = _read_manifest(manifest_path)
        for key in ("full_run_wall_seconds", "full_run_cpu_seconds"):
            if key in previous_manifest:
                manifest[key] = previous_manifest[key]
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, default=str) + "\n")
    atomic_write_text(out / "README.md", _index(manifest, out))
    return records


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` with forward slashes (a link in the index)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def _read_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _index(manifest: dict, out: Path) -> str:
    quick = manifest["quick"]
    lines = [
        "# Figures" + (" (quick sizes)" if quick else ""),
        "",
        "Made by `sim figures" + (" --quick" if quick else "") + "` from the configs in "
        f"[`{manifest.get('configs', 'experiments/figures')}/`]"
        f"({manifest.get('configs_link', '../../experiments/figures/')}); "
        "regenerate one figure with the command in its "
        "entry. Each figure comes with `<name>.csv`, exactly the data drawn (a `panel` column separates "
        "panels), "
        "and `<name>.txt`, its caption. Everything is simulated by the project's own engines from versioned "
        "configs and fixed seeds: the same command gives the same numbers.",
        "",
    ]
    wall = manifest.get("full_run_wall_seconds")
    machine = manifest.get("platform", {})
    if wall is not None:
        cpu = manifest.get("full_run_cpu_seconds")
        lines += [
            f"Whole run: {wall:.0f} s wall time"
            + (f" ({cpu:.0f} s CPU time)" if cpu is not None else "")
            + f" on {machine.get('cpus', '?')} CPU cores ({machine.get('system', '')} "
            f"{machine.get('machine', '')}), "
            f"sim {manifest.get('versions', {}).get('sim', '?')}, numba "
            f"{manifest.get('versions', {}).get('numba', '?')}. "
            "SVGs are written next to the PNGs but not committed (regenerate them with the command).",
            "",
        ]
    lines += [
        "| # | figure | files | customers × replications | time | command |",
        "|---|---|---|---|---|---|",
    ]
    for entry in manifest["figures"]:
        sizes = entry["sizes"]
        size = f"{sizes['customers']:,} × {sizes['replications']}" + (
            f", H = {sizes['horizon']}" if sizes.get("horizon") else ""
        )
        files = ", ".join(f"[{name.rsplit('.', 1)[-1]}]({name})" for name in entry["files"])
        if entry.get("config"):
            files += f", [config]({entry['config']})"
        status = "" if entry["status"] == "ok" else f" — **{entry['status']}**"
        lines.append(
            f"| {entry['number']} | [{entry['title']}](#{entry['number']}-{_anchor(entry['title'])}){status} "
            f"| {files} | {size} | {entry['seconds']:.1f} s | `{entry['command']}` |"
        )
    lines.append("")
    for entry in manifest["figures"]:
        lines += [f"## {entry['number']}. {entry['title']}", ""]
        if entry["status"] == "ok":
            lines += [f"![{entry['title']}]({entry['name']}.png)", ""]
        lines += [entry["caption"], "", f"`{entry['command']}`", ""]
    return "\n".join(lines)


def _anchor(title: str) -> str:
    keep = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -")
    return keep.strip().replace(" ", "-")


def _threads_limit() -> int:
    from sim.model.sections import RunConfig

    return next(
        item.le
        for item in RunConfig.model_fields["threads"].metadata
        if getattr(item, "le", None) is not None
    )


def check_threads(threads) -> None:
    """``threads`` is None or a whole number in [0, run.threads' upper bound]; else ValueError."""
    if threads is None:
        return
    limit = _threads_limit()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 0 <= threads <= limit:
        raise ValueError(
            f"--threads {threads!r}: must be a whole number in [0, {limit}] (numba threads, 0 = all "
            "cores; the bound of run.threads)"
        )
