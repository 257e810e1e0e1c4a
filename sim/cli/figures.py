"""``sim figures``: regenerate the field's figures from the versioned configs of
``experiments/figures/``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from sim.cli._common import EXIT_BAD_INPUT, non_negative_int
from sim.exceptions import ConfigError, UnsafeOutputError
from sim.io.paths import check_output_dir
from sim.plotting.gallery.kinds import load_figure_specs
from sim.plotting.gallery.make import check_threads, make_figures
from sim.plotting.gallery.spec import DEFAULT_CONFIG_DIR, DEFAULT_OUT, DEFAULT_QUICK_OUT, FIGURE_SUFFIXES

__all__ = [
    "register",
]


def _manifest_problem(out: Path, force: bool) -> str | None:
    """A folder whose ``manifest.json`` is not a figure set's (a ``sim run`` or ``sim optimize``
    result: it has ``experiment`` and ``files``, no ``figures`` list) is not overwritten
    without ``--force``: making figures there would replace that manifest.
    """
    path = Path(out) / "manifest.json"
    if force or not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        manifest = None
    if isinstance(manifest, dict) and isinstance(manifest.get("figures"), list):
        return None
    what = (
        "a result of sim run or sim optimize (its manifest lists 'experiment' and 'files', not 'figures')"
        if isinstance(manifest, dict) and "experiment" in manifest
        else "not a figure set's"
    )
    return (
        f"--out {out}: its manifest.json is {what}; making figures there would replace it. "
        "Choose another --out, or pass --force to write into it anyway"
    )


def _figures_command(args) -> int:

    only = None
    if args.only:
        names = [name.strip() for item in args.only for name in item.split(",")]
        if not all(names):
            print(
                f"sim: --only {','.join(args.only)!r}: an empty figure name; give figure names (file stems, "
                "repeat --only or separate with commas), or leave --only out to make every figure",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        only = names
    try:
        check_threads(args.threads)
        if args.list:
            for spec in load_figure_specs(args.configs):
                print(f"{spec.number:>2}. {spec.name:<22} {spec.kind:<22} {spec.title}")
            return 0
        specs = load_figure_specs(args.configs, only)
    except (ConfigError, ValueError) as error:
        print(f"sim: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = args.out if args.out is not None else (DEFAULT_QUICK_OUT if args.quick else DEFAULT_OUT)
    try:  # the rules of sim.io.paths: never the root or home folder, nor a folder of other files
        check_output_dir(out, force=args.force, suffixes=FIGURE_SUFFIXES)
    except UnsafeOutputError as error:
        print(f"sim: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    problem = _manifest_problem(out, args.force)
    if problem:
        print(f"sim: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"sim figures: {len(specs)} figure{'s' if len(specs) != 1 else ''} "
        f"({'quick' if args.quick else 'full'} sizes) -> {out}/"
    )
    started = time.perf_counter()
    try:
        records = make_figures(
            out, quick=args.quick, only=only, config_dir=args.configs, threads=args.threads, log=print
        )
    except (
        ConfigError,
        ValueError,
    ) as error:  # load_figure_specs refuses these before work; never a traceback
        print(f"sim: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    skipped = [record for record in records if record.status != "ok"]
    print(
        f"wrote {out}/ ({len(records) - len(skipped)} figures, README.md, manifest.json) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    for record in skipped:
        print(f"  figure {record.number} ({record.name}): {record.status}")
    return 0


def register(subparsers) -> None:
    """Add ``sim figures`` to the command line (see :mod:`sim.cli.main`)."""
    parser = subparsers.add_parser(
        "figures",
        help="regenerate the field's figures (PNG, SVG, data CSV, caption) into results/figures/",
        description="Regenerate every figure from the versioned configs in experiments/figures/: "
        "for each a PNG, "
        "an SVG, the CSV of the plotted data and a caption, plus README.md (index) and manifest.json.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small sizes (CI, notebooks); writes to {DEFAULT_QUICK_OUT}/ unless --out is given",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="make only these figures (file stems; repeat or separate with commas)",
    )
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default {DEFAULT_OUT}/)")
    parser.add_argument(
        "--configs",
        type=Path,
        default=DEFAULT_CONFIG_DIR,
        help=f"folder of figure configs (default {DEFAULT_CONFIG_DIR}/)",
    )
    parser.add_argument(
        "--threads",
        type=non_negative_int,
        default=None,
        help="numba threads (0 = all; never changes the numbers)",
    )
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that holds other files (never the root or home folder; "
        "rules in sim/io/paths.py)",
    )
    parser.set_defaults(handler=_figures_command)
