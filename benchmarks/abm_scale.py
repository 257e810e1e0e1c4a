"""How long the SimPy agent engine takes for 10,000 customers x 120 months.

Run: ``python benchmarks/abm_scale.py [--customers N] [--horizon H] [--repeats K]``

The baseline model (experiments/baseline.toml) with no interactions, one replication, once
for one policy (uniform spend) and once for the baseline's three policies (three markets).
Prints the median wall time over ``--repeats`` runs after a warm-up (which compiles the
jitted step), the simulated customer-periods and the microseconds per customer-period,
and the same projection with the numba core for comparison. Timings depend on the machine
(the reference machine: 2 vCPU, Python 3.11, SimPy 4.1); quote medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import sim

BASELINE = Path(__file__).resolve().parents[1] / "experiments" / "baseline.toml"


def _median_seconds(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--horizon", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = sim.load_config(BASELINE).with_overrides(run={"replications": 1, "seed": 1})
    one_policy = config.with_overrides(policies=[{"name": "uniform", "kind": "uniform", "spend": 2.0}])
    sim.simulate_market(one_policy, customers=200, horizon=12)  # warm-up: compile / load the jitted step
    sim.project(config, customers=4096, horizon=12)
    print(
        f"SimPy agent engine, {args.customers:,} customers x {args.horizon} periods, no interactions "
        f"(median of {args.repeats}):"
    )
    for label, cfg in (
        ("1 policy (uniform)", one_policy),
        (f"{len(config.policies)} policies (baseline)", config),
    ):
        seconds, result = _median_seconds(
            lambda cfg=cfg: sim.simulate_market(cfg, customers=args.customers, horizon=args.horizon),
            args.repeats,
        )
        periods = result.timings["customer_periods"]
        print(
            f"  {label:<24} {seconds:7.2f} s   {periods:>10,} customer-periods   "
            f"{seconds / periods * 1e6:5.2f} us per customer-period"
        )
    seconds, _ = _median_seconds(
        lambda: sim.project(config, customers=args.customers, horizon=args.horizon), args.repeats
    )
    print(f"numba core, same {len(config.policies)} policies: {seconds:7.3f} s")


if __name__ == "__main__":
    main()
