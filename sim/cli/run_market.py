"""``sim run`` on the agent engine (``--engine abm`` or ``engine = "abm"``)."""

from __future__ import annotations

import time

import pandas as pd
from sim.model.config import ExperimentConfig
from sim.engines.market.engine import MarketResult, simulate_market
from sim.plotting.market import market_figure

def run_market_command(config: ExperimentConfig, out, args) -> int:
    """``sim run CONFIG --engine abm`` (or ``engine = "abm"`` in the config): simulate the
    market and write the result folder in the core's layout — one CSV per table (the
    core's tables plus ``market``, ``customers`` and ``events``), ``overview.png``,
    ``market.png`` and ``manifest.json`` (written last). Returns the exit status."""
    import shlex
    import sys

    from sim.cli.run import _print_summary

    interactions = ", ".join(config.market.interactions) or "none"
    print(f"{config.name} (agent engine, interactions: {interactions}, timing: {config.market.timing}): "
          f"{config.population.customers:,} customers x {config.run.replications} replications x "
          f"{config.run.horizon} periods, {len(config.policies)} policies, seed {config.run.seed}")
    started = time.perf_counter()
    result = simulate_market(config, progress=not args.no_progress)
    result.timings["total_seconds"] = time.perf_counter() - started
    figures = {}
    if not args.no_figure:
        import matplotlib

        matplotlib.use("Agg")
        from sim.plotting.projection import result_figure

        figures["overview.png"] = result_figure(result)
        figures["market.png"] = market_figure(result)
    command = "sim " + " ".join(shlex.quote(part) for part in sys.argv[1:])
    result.save(out, command=command, force=True, figures=figures,
                extra_manifest={"engine": "abm", "interactions": list(config.market.interactions)})
    _print_summary(result)
    print()
    print(_market_report(result))
    print(f"\nwrote {out}/ ({', '.join(result.TABLES)}, {', '.join(figures) or 'no figure'}, manifest.json) "
          f"in {result.timings['total_seconds']:.1f} s")
    return 0


def _market_report(result: MarketResult) -> str:
    """Per policy, totals over the horizon (means over replications) of the market table."""
    market = result.market
    totals = market.groupby(["policy", "replication"], sort=False).agg(
        customer_periods=("live", "sum"),
        joined=("joined_acquisition", "sum"),
        joined_wom=("joined_word_of_mouth", "sum"),
        deterred=("deterred", "sum"),
        complaints=("complaints", "sum"),
        retention_spend=("retention_spend", "sum"),
        firm_value=("cash_value", "sum"),
    )
    waits = market.groupby(["policy", "replication"], sort=False)[["wait_mean"]].mean()
    table = totals.join(waits).groupby("policy", sort=False).mean()
    table = table.rename(columns={"joined": "joined_acquisition", "joined_wom": "joined_word_of_mouth"})
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:,.2f}".format):
        heading = "market totals per replication (firm_value: net cash discounted to period 0)\n"
        return heading + table.reset_index().to_string(index=False)
