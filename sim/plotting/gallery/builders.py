"""How each kind of figure is built (simulate and tabulate), drawn, and described before any
work (the caption's facts), one ``_build_*`` / ``_draw_*`` / ``*_facts`` triple per kind.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sim.experiments.comparison import frontier_table
from sim.model.config import ExperimentConfig
from sim.model.names import PATTERNS
from sim.plotting.gallery.spec import FRONTIER_COLUMNS, FigureData, FigureSpec
from sim.plotting.gallery.tables import (
    ABC_REFERENCE,
    _market_columns,
    lorenz_table,
    loyalty_curve_table,
    response_config,
    survival_validation_table,
    tenure_stage_table,
)
from sim.plotting.lifecycle import (
    plot_lifecycle_curve,
    plot_lorenz,
    plot_loyalty_curve,
    plot_market_series,
    plot_markov_validation,
    plot_net_clv,
    plot_pattern_bars,
    plot_response_curve,
    plot_retention_by_satisfaction,
    plot_satisfaction_over_time,
    plot_survival_validation,
)
from sim.plotting.projection import plot_comparison_forest, plot_frontier
from sim.tables.result import Z95


def _size_facts(config: ExperimentConfig) -> dict:
    return {
        "customers": config.population.customers,
        "replications": config.run.replications,
        "horizon": config.run.horizon,
        "seed": config.run.seed,
        "long_term": config.transitions.long_term_periods,
    }


def _with_panel(frame: pd.DataFrame, panel: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, "panel", panel)
    return frame


def _project(config: ExperimentConfig, threads: int | None, **overrides):
    from sim.runs.projection import project

    return project(config, threads=threads, **overrides)


def _build_lifecycle_curve(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    params = spec.parameters(quick)
    table = tenure_stage_table(config, params.tenure_step, policies=[params.policy], threads=threads)
    table = table[table["customer_periods"] >= params.min_customer_periods]
    table = table[
        [
            "policy",
            "tenure_start",
            "tenure_end",
            "tenure_mid",
            "stage",
            "customer_periods",
            "loyalty_mean",
            "profit_mean",
        ]
    ].reset_index(drop=True)
    return FigureData(
        table,
        {
            **_size_facts(config),
            "policy": params.policy,
            "tenure_step": params.tenure_step,
            "min_customer_periods": params.min_customer_periods,
        },
    )


def _draw_lifecycle_curve(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    plot_lifecycle_curve(data.table, "loyalty_mean", ax=axes[0])
    plot_lifecycle_curve(data.table, "profit_mean", ax=axes[1])
    axes[0].set_title("Relationship level")
    axes[1].set_title("Profit per period (net of retention spend)")
    axes[1].get_legend().remove()
    label_panels(axes)
    return figure


def _build_stage_occupancy(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    params = spec.parameters(quick)
    result = _project(config, threads)
    policies = list(params.policies or config.policy_names)
    table = result.stages[result.stages["policy"].isin(policies)].reset_index(drop=True)
    return FigureData(table, {**_size_facts(config), "policies": ", ".join(policies)})


def _draw_stage_occupancy(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.projection import plot_stage_occupancy
    from sim.plotting.style import label_panels

    policies = list(dict.fromkeys(data.table["policy"]))
    figure, axes = plt.subplots(
        1, len(policies), figsize=(4.2 * len(policies), 3.8), sharey=True, squeeze=False
    )
    axes = axes[0]
    for index, (ax, policy) in enumerate(zip(axes, policies)):
        plot_stage_occupancy(data.table, policy=policy, ax=ax)
        ax.set_title(policy, loc="left", fontsize=10, fontweight="bold")
        ax.grid(False)
        if index > 0:
            ax.get_legend().remove()
            ax.set_ylabel("")
    label_panels(axes)
    return figure


def _build_lifecycle_patterns(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    result = _project(config, threads)
    table = result.patterns[["policy", "pattern", "customers", "share", "clv_mean"]].reset_index(drop=True)
    return FigureData(table, _size_facts(config))


def _draw_lifecycle_patterns(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    plot_pattern_bars(data.table, "share", ax=axes[0])
    plot_pattern_bars(data.table, "clv_mean", ax=axes[1])
    axes[0].set_title("Share of customers")
    axes[1].set_title("Mean CLV")
    axes[1].get_legend().remove()
    for ax in axes:
        ax.set_xticks(
            range(len(PATTERNS)),
            [
                "I\nended in\nexploration",
                "II\nended in\nformation",
                "III\nleft stability\nearly",
                "IV\nlong-term",
            ],
        )
    label_panels(axes)
    return figure


def _build_satisfaction_loyalty(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    params = spec.parameters(quick)
    curve = loyalty_curve_table(config, params.points)
    result = _project(config, threads)
    table = result.satisfaction_retention
    simulated = table[
        (table["policy"] == params.policy)
        & table["stage"].isin(params.stages)
        & (table["customer_periods"] >= params.min_customer_periods)
    ]
    simulated = simulated[
        ["policy", "stage", "satisfaction_low", "satisfaction_high", "customer_periods", "retention"]
    ]
    frame = pd.concat([_with_panel(curve, "model"), _with_panel(simulated, "simulated")], ignore_index=True)
    loy = config.loyalty
    return FigureData(
        frame,
        {
            **_size_facts(config),
            "policy": params.policy,
            "defection_threshold": loy.defection_threshold,
            "affection_threshold": loy.affection_threshold,
            "indifference_low": loy.indifference_low,
            "indifference_high": loy.indifference_high,
            "min_customer_periods": params.min_customer_periods,
        },
    )


def _draw_satisfaction_loyalty(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels

    table = data.table
    figure, axes = plt.subplots(1, 2, figsize=(10.5, 4.0))
    curve = table[table["panel"] == "model"]
    plot_loyalty_curve(curve, ax=axes[0])
    axes[0].set_title("Model input: loyalty from satisfaction (M6)")
    zones = (data.facts["defection_threshold"], data.facts["affection_threshold"])
    plot_retention_by_satisfaction(table[table["panel"] == "simulated"], ax=axes[1], zones=zones)
    axes[1].set_title(f"Simulated retention by satisfaction ({data.facts['policy']})")
    label_panels(axes)
    return figure


def _build_satisfaction_trap(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    params = spec.parameters(quick)
    result = _project(config, threads)
    policies = list(params.policies or config.policy_names)
    trajectory = result.trajectory[result.trajectory["policy"].isin(policies)]
    trajectory = trajectory[["policy", "period", "active_share", "satisfaction_mean"]]
    summary = result.summary.set_index("policy").loc[policies].reset_index()
    values = summary[["policy", "clv_mean", "clv_se", "retention_spend", "satisfaction_mean"]].copy()
    values["ci_low"] = values["clv_mean"] - Z95 * values["clv_se"]
    values["ci_high"] = values["clv_mean"] + Z95 * values["clv_se"]
    frame = pd.concat(
        [_with_panel(trajectory, "trajectory"), _with_panel(values, "value")], ignore_index=True
    )
    facts = {**_size_facts(config)}
    for row in values.itertuples():
        facts[f"clv_{row.policy}"] = row.clv_mean
        facts[f"spend_{row.policy}"] = row.retention_spend
        facts[f"satisfaction_{row.policy}"] = row.satisfaction_mean
    return FigureData(frame, facts)


def _draw_satisfaction_trap(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels, policy_colors

    table = data.table
    values = table[table["panel"] == "value"]
    colors = policy_colors(list(values["policy"]))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.0), width_ratios=[1.4, 1])
    plot_satisfaction_over_time(table[table["panel"] == "trajectory"], ax=axes[0], colors=colors)
    axes[0].set_title("Satisfaction of active customers")
    plot_net_clv(values, ax=axes[1], colors=colors)
    axes[1].set_title("Net CLV (after retention spend)")
    label_panels(axes)
    return figure


def _build_spend_response(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    from sim.model.equations import best_care_spend

    config = spec.config("main", quick)
    params = spec.parameters(quick)
    sweep = response_config(config, params.base_policy, params.stages, params.spends)
    result = _project(sweep, threads)
    summary = result.summary.set_index("policy")
    comparison = result.comparison[result.comparison["reference"] == params.base_policy].set_index("policy")
    base = next(policy for policy in sweep.policies if policy.name == params.base_policy)
    dyn = config.dynamics
    peak = best_care_spend(dyn.care_gain, dyn.care_scale, dyn.annoyance)
    rows = []
    for stage in params.stages:
        for spend in params.spends:
            name = f"{stage}_{float(spend):g}"
            delta = comparison.loc[name]
            rows.append(
                {
                    "stage": stage,
                    "spend": float(spend),
                    "policy": name,
                    "clv_mean": summary.loc[name, "clv_mean"],
                    "clv_se": summary.loc[name, "clv_se"],
                    "retention_spend": summary.loc[name, "retention_spend"],
                    "delta_clv": delta["delta_clv"],
                    "delta_se": delta["se"],
                    "ci_low": delta["ci_low"],
                    "ci_high": delta["ci_high"],
                    "is_base": float(spend) == getattr(base.spend, stage),
                    "care_peak_spend": peak,
                }
            )
    table = pd.DataFrame(rows)
    table["is_optimum"] = False
    for stage, group in table.groupby("stage", sort=False):
        table.loc[group["clv_mean"].idxmax(), "is_optimum"] = True
    optimum = table[table["is_optimum"]].set_index("stage")["spend"]
    facts = {
        **_size_facts(config),
        "base_policy": params.base_policy,
        "care_peak_spend": peak,
        "optimum": ", ".join(f"{stage} {optimum[stage]:g}" for stage in params.stages),
        "base_spend": ", ".join(f"{stage} {getattr(base.spend, stage):g}" for stage in params.stages),
    }
    return FigureData(table, facts)


def _draw_spend_response(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels

    stages = list(dict.fromkeys(data.table["stage"]))
    columns = 2 if len(stages) > 1 else 1
    rows = math.ceil(len(stages) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False)
    axes = axes.ravel()
    for index, (ax, stage) in enumerate(zip(axes, stages)):
        plot_response_curve(data.table, stage, ax=ax)
        if index > 0:
            ax.get_legend().remove()
    for ax in axes[len(stages) :]:
        ax.set_visible(False)
    label_panels(axes[: len(stages)])
    return figure


def _build_policy_comparison(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    params = spec.parameters(quick)
    result = _project(config, threads)
    forest = result.comparison[result.comparison["reference"] == params.reference]
    forest = forest[["policy", "reference", "delta_clv", "se", "ci_low", "ci_high", "delta_spend"]]
    front = frontier_table(result.summary, 1)[FRONTIER_COLUMNS]
    frame = pd.concat([_with_panel(forest, "forest"), _with_panel(front, "frontier")], ignore_index=True)
    best = front.loc[front["clv_mean"].idxmax()]
    return FigureData(
        frame,
        {
            **_size_facts(config),
            "reference": params.reference,
            "best_policy": best["policy"],
            "efficient": ", ".join(front.loc[front["efficient"].astype(bool), "policy"]),
        },
    )


def _draw_policy_comparison(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels

    table = data.table
    figure, axes = plt.subplots(1, 2, figsize=(11.5, 4.2), width_ratios=[1, 1.3])
    plot_comparison_forest(table[table["panel"] == "forest"], reference=data.facts["reference"], ax=axes[0])
    plot_frontier(table[table["panel"] == "frontier"], ax=axes[1])
    axes[1].set_title("Spend–CLV frontier (95 % CI)", loc="left", fontsize=11, fontweight="bold")
    label_panels(axes)
    return figure


def _build_clv_decomposition(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    result = _project(config, threads)
    columns = (
        ["policy"]
        + [f"clv{part}" for part in range(1, 7)]
        + ["retention_spend", "acquisition_cost", "clv_mean", "clv_se"]
    )
    return FigureData(result.summary[columns].reset_index(drop=True), _size_facts(config))


def _draw_clv_decomposition(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.projection import plot_clv_parts

    figure, ax = plt.subplots(figsize=(8.5, 4.2))
    plot_clv_parts(data.table, ax=ax)
    ax.set_title("")
    ax.set_xlabel("")
    ax.set_ylabel("present value per customer (money units)")
    return figure


def _build_value_concentration(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    params = spec.parameters(quick)
    result = _project(config, threads)
    policies = list(params.policies or config.policy_names)
    clv = getattr(result, "clv", None)
    frames = []
    if clv:
        frames.append(
            _with_panel(lorenz_table({policy: clv[policy] for policy in policies}, params.points), "lorenz")
        )
    else:  # per-customer CLVs not kept: the ABC points of the value_concentration table
        rows = []
        for policy in policies:
            groups = result.value_concentration[result.value_concentration["policy"] == policy]
            rows.append({"policy": policy, "customer_share": 0.0, "value_share": 0.0})
            rows += [
                {"policy": policy, "customer_share": c, "value_share": v}
                for c, v in zip(groups["customer_share"].cumsum(), groups["value_share"].cumsum())
            ]
        frames.append(_with_panel(pd.DataFrame(rows), "lorenz"))
    abc = result.value_concentration[result.value_concentration["policy"].isin(policies)]
    frames.append(
        _with_panel(abc[["policy", "group", "customer_share", "value_share", "negative_share"]], "abc")
    )
    frames.append(_with_panel(ABC_REFERENCE, "reference"))
    facts = {**_size_facts(config)}
    for row in abc.itertuples():
        facts[f"{row.policy}_{row.group}_value_share"] = row.value_share
        facts[f"{row.policy}_{row.group}_negative_share"] = row.negative_share
    return FigureData(pd.concat(frames, ignore_index=True), facts)


def _draw_value_concentration(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels, policy_colors

    table = data.table
    lorenz = table[table["panel"] == "lorenz"]
    colors = policy_colors(list(dict.fromkeys(lorenz["policy"])))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=[1.3, 1])
    plot_lorenz(lorenz, ax=axes[0], reference=table[table["panel"] == "reference"], colors=colors)
    axes[0].set_title("Lorenz / ABC curve of CLV")
    abc = table[table["panel"] == "abc"]
    policies = list(dict.fromkeys(abc["policy"]))
    groups = ["A", "B", "C"]
    width = 0.8 / (len(policies) + 1)
    positions = np.arange(len(groups))
    for index, policy in enumerate(policies):
        rows = abc[abc["policy"] == policy].set_index("group").loc[groups]
        axes[1].bar(
            positions + (index - len(policies) / 2) * width,
            rows["value_share"],
            width=width,
            color=colors[policy],
            label=policy,
        )
        for x, value, negative in zip(
            positions + (index - len(policies) / 2) * width, rows["value_share"], rows["negative_share"]
        ):
            if negative > 0.005:
                axes[1].annotate(
                    f"{negative:.0%}",
                    (x, max(value, 0.0)),
                    textcoords="offset points",
                    xytext=(0, 2),
                    ha="center",
                    va="bottom",
                    fontsize=6.5,
                    color="#b2182b",
                )
    reference = [0.5, 0.3, 0.2]
    axes[1].bar(
        positions + (len(policies) / 2) * width,
        reference,
        width=width,
        color="white",
        edgecolor="#636363",
        hatch="//",
        label="rule of thumb",
    )
    axes[1].set_xticks(positions, ["A: top 5 %", "B: next 15 %", "C: bottom 80 %"])
    axes[1].set_ylabel("share of total CLV")
    axes[1].axhline(0.0, color="black", linewidth=0.6)
    axes[1].set_title("Value share by ABC group (red: share with CLV < 0)")
    axes[1].legend()
    axes[1].margins(y=0.12)
    label_panels(axes)
    return figure


def _build_validation(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    from sim.analytic.lifecycle_chain import lifecycle_markov_clv
    from sim.analytic.sbg import sbg_fit

    params = spec.parameters(quick)
    markov = spec.config("markov", quick)
    exact_rows, simulated_rows = [], []
    largest = max(params.horizons)
    for horizon in range(1, largest + 1):
        at_horizon = markov.with_overrides(run={"horizon": horizon})
        for policy in markov.policy_names:
            exact_rows.append(
                {"policy": policy, "horizon": horizon, "exact_clv": lifecycle_markov_clv(at_horizon, policy)}
            )
    exact = pd.DataFrame(exact_rows)
    for horizon in params.horizons:
        result = _project(markov, threads, horizon=horizon)
        for row in result.summary.itertuples():
            value = exact[(exact["policy"] == row.policy) & (exact["horizon"] == horizon)]["exact_clv"].iloc[
                0
            ]
            simulated_rows.append(
                {
                    "policy": row.policy,
                    "horizon": horizon,
                    "exact_clv": value,
                    "simulated_clv": row.clv_mean,
                    "simulated_se": row.clv_se,
                    "z": (row.clv_mean - value) / row.clv_se,
                }
            )
    simulated = pd.DataFrame(simulated_rows)

    cohort = spec.config("cohort", quick)
    survival = survival_validation_table(
        cohort, params.survivors, params.holdout, policy=params.cohort_policy, threads=threads
    )
    fit = sbg_fit(list(params.survivors))
    periods = len(params.survivors) + len(params.holdout)
    frame = pd.concat(
        [
            _with_panel(exact, "markov_exact"),
            _with_panel(simulated, "markov_simulated"),
            _with_panel(survival, "survival"),
        ],
        ignore_index=True,
    )
    facts = {
        **_size_facts(markov),
        "cohort_customers": cohort.population.customers,
        "cohort_replications": cohort.run.replications,
        "alpha": fit.alpha,
        "beta": fit.beta,
        "max_abs_z": float(simulated["z"].abs().max()),
        "fit_periods": len(params.survivors) - 1,
        "periods": periods - 1,
        "horizons": ", ".join(str(h) for h in params.horizons),
    }
    return FigureData(frame, facts)


def _draw_validation(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels

    table = data.table
    figure, axes = plt.subplots(1, 2, figsize=(11.5, 4.3), width_ratios=[1.3, 1])
    plot_markov_validation(
        table[table["panel"] == "markov_exact"], table[table["panel"] == "markov_simulated"], ax=axes[0]
    )
    axes[0].set_title("Markov-reducible model: CLV, closed form vs simulated")
    plot_survival_validation(table[table["panel"] == "survival"], ax=axes[1])
    axes[1].set_title(f"sBG survival (α = {data.facts['alpha']:.3f}, β = {data.facts['beta']:.3f})")
    label_panels(axes)
    return figure


def _build_agent_effects(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    from sim.engines.market.engine import simulate_market

    params = spec.parameters(quick)
    frames = []
    facts = {}
    entry = None
    for scenario in params.scenarios:
        config = spec.config(scenario, quick)
        facts.update(_size_facts(config))
        keep = [
            policy.model_dump(mode="python") for policy in config.policies if policy.name == params.policy
        ]
        config = config.with_overrides(policies=keep)
        result = simulate_market(config)
        market = result.market[result.market["policy"] == params.policy]
        table = _market_columns(market, config.population.customers)
        table.insert(0, "scenario", scenario)
        frames.append(table)
        competitor = config.market.competitor
        if competitor.enabled:
            entry = competitor.enters_at
            facts["competitor_enters_at"] = competitor.enters_at
            facts["competitor_exit_odds"] = (
                f"relationship × {competitor.exit_odds.relationship:g}, "
                f"transactional × {competitor.exit_odds.transactional:g}"
            )
    table = pd.concat(frames, ignore_index=True)
    facts["policy"] = params.policy
    facts["entry"] = entry
    return FigureData(table, facts)


def _draw_agent_effects(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels, policy_colors

    table = data.table
    scenarios = list(dict.fromkeys(table["scenario"]))
    colors = policy_colors(scenarios)
    entry = data.facts.get("entry")
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    plot_market_series(table, "live_per_cohort", ax=axes[0], colors=colors, entry=entry)
    axes[0].set_ylabel("live customers per cohort customer")
    axes[0].set_title("Customers in the market")
    exits = table.melt(
        id_vars=["scenario", "period"],
        value_vars=["exit_rate_relationship", "exit_rate_transactional"],
        var_name="segment",
        value_name="exit_rate",
    )
    for scenario in scenarios:
        for segment, style in (("exit_rate_relationship", "-"), ("exit_rate_transactional", "--")):
            rows = exits[(exits["scenario"] == scenario) & (exits["segment"] == segment)]
            smooth = rows["exit_rate"].rolling(6, min_periods=1, center=True).mean()
            axes[1].plot(rows["period"], smooth, color=colors[scenario], linestyle=style)
    if entry is not None:
        axes[1].axvline(entry, color="#636363", linestyle=":", linewidth=1.0)
    axes[1].set_xlabel("period")
    axes[1].set_ylabel("exits per live customer (6-period moving mean)")
    axes[1].set_title("Exit rate by segment")
    from matplotlib.lines import Line2D

    axes[1].legend(
        handles=[
            Line2D([], [], color="black", linestyle="-", label="relationship customers"),
            Line2D([], [], color="black", linestyle="--", label="transactional customers"),
        ],
        loc="upper left",
    )
    axes[1].set_ylim(0, None)
    plot_market_series(table, "cash_value_cumulative", ax=axes[2], colors=colors, entry=entry)
    axes[2].set_ylabel("cumulative discounted net cash per cohort customer")
    axes[2].set_title("Value to the firm")
    axes[2].get_legend().remove()
    label_panels(axes)
    return figure


def _main_size_facts(spec, parameters, configs) -> dict:
    return _size_facts(configs["main"])


def _lifecycle_curve_facts(spec, parameters, configs) -> dict:
    return {
        **_size_facts(configs["main"]),
        "policy": parameters.policy,
        "tenure_step": parameters.tenure_step,
        "min_customer_periods": parameters.min_customer_periods,
    }


def _stage_occupancy_facts(spec, parameters, configs) -> dict:
    config = configs["main"]
    return {**_size_facts(config), "policies": ", ".join(parameters.policies or config.policy_names)}


def _satisfaction_loyalty_facts(spec, parameters, configs) -> dict:
    config = configs["main"]
    loy = config.loyalty
    return {
        **_size_facts(config),
        "policy": parameters.policy,
        "defection_threshold": loy.defection_threshold,
        "affection_threshold": loy.affection_threshold,
        "indifference_low": loy.indifference_low,
        "indifference_high": loy.indifference_high,
        "min_customer_periods": parameters.min_customer_periods,
    }


def _satisfaction_trap_facts(spec, parameters, configs) -> dict:
    config = configs["main"]
    facts = _size_facts(config)
    for policy in parameters.policies or config.policy_names:
        facts.update({f"clv_{policy}": 0.0, f"spend_{policy}": 0.0, f"satisfaction_{policy}": 0.0})
    return facts


def _spend_response_facts(spec, parameters, configs) -> dict:
    from sim.model.equations import best_care_spend

    config = configs["main"]
    dyn = config.dynamics
    base = next(policy for policy in config.policies if policy.name == parameters.base_policy)
    return {
        **_size_facts(config),
        "base_policy": parameters.base_policy,
        "care_peak_spend": best_care_spend(dyn.care_gain, dyn.care_scale, dyn.annoyance),
        "optimum": ", ".join(
            f"{stage} {spend:g}" for stage, spend in zip(parameters.stages, parameters.spends)
        ),
        "base_spend": ", ".join(f"{stage} {getattr(base.spend, stage):g}" for stage in parameters.stages),
    }


def _policy_comparison_facts(spec, parameters, configs) -> dict:
    config = configs["main"]
    return {
        **_size_facts(config),
        "reference": parameters.reference,
        "best_policy": config.policy_names[0],
        "efficient": ", ".join(config.policy_names),
    }


def _value_concentration_facts(spec, parameters, configs) -> dict:
    from sim.tables.result import VALUE_GROUPS

    config = configs["main"]
    facts = _size_facts(config)
    for policy in parameters.policies or config.policy_names:
        for group, _ in VALUE_GROUPS:
            facts.update({f"{policy}_{group}_value_share": 0.0, f"{policy}_{group}_negative_share": 0.0})
    return facts


def _validation_facts(spec, parameters, configs) -> dict:
    cohort = configs["cohort"]
    return {
        **_size_facts(configs["markov"]),
        "cohort_customers": cohort.population.customers,
        "cohort_replications": cohort.run.replications,
        "alpha": 0.0,
        "beta": 0.0,
        "max_abs_z": 0.0,
        "fit_periods": len(parameters.survivors) - 1,
        "periods": len(parameters.survivors) + len(parameters.holdout) - 1,
        "horizons": ", ".join(str(h) for h in parameters.horizons),
    }


def _agent_effects_facts(spec, parameters, configs) -> dict:
    facts, entry = {}, None
    for scenario in parameters.scenarios:
        config = configs[scenario]
        facts.update(_size_facts(config))
        competitor = config.market.competitor
        if competitor.enabled:
            entry = competitor.enters_at
            facts["competitor_enters_at"] = competitor.enters_at
            facts["competitor_exit_odds"] = (
                f"relationship × {competitor.exit_odds.relationship:g}, "
                f"transactional × {competitor.exit_odds.transactional:g}"
            )
    facts["policy"] = parameters.policy
    facts["entry"] = entry
    return facts
