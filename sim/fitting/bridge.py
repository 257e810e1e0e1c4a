"""From a fitted lifecycle model to policy experiments on the real customer base.

:func:`fitted_customer_base` turns a :class:`~sim.fitting.lifecycle.LifecycleFit` (the
lifecycle stage HMM fitted to a transaction log) into

* an experiment config whose stage dynamics and cash flows are the fitted ones
  (``fitted_config.toml``), and
* a snapshot of the customers alive at the calibration end (``snapshot.csv``), the config's
  ``population.snapshot``,

so that ``sim run fitted_config.toml`` compares the config's relationship-investment policies
on that firm's customers (residual CLV from the calibration end on, paired ΔCLV). ``sim fit
--models lifecycle,...`` writes both. docs/model.md §13 states the mapping; in short:

Period
    One simulator period is one period of the fit (``economics.period_months`` = the unit's
    length in months: a week is 7 / 30.4375).
Segments
    The simulator's two segments are the fit's latent types: the classes (relationship class
    first) when the fit has no exit frailty; a one-class fit with an exit frailty has two
    types, the frailty's two-point quadrature (low frailty = relationship). Per segment,
    ``transitions.by_segment`` holds the fitted moves (advance: exploration -> formation,
    formation -> stability, the win-back decline -> formation; exit: exploration -> ended,
    formation -> decline, stability -> decline, the churn decline -> ended), with
    ``exit_odds = 1``.
Cash
    The purchase rate ``lambda_{c,k}`` times the spend per purchase ``s_k`` (1 for a log
    without amounts: cash in purchases) is the revenue per period of a customer with rate
    multiplier 1 in stage ``k``. With ``V = max lambda s`` the wallet is ``V u`` (``u`` the
    rate multiplier) and ``share_of_wallet_by_segment[c][k] = lambda_{c,k} s_k / V`` (at most
    1), so ``wallet * share_of_wallet = u lambda_{c,k} s_k``. The log has revenue, not
    profit: ``economics.margin`` comes from an option or the base config. Every other cash
    part (share-of-wallet growth, cross-selling, cost to serve, word of mouth, price premium,
    acquisition cost) is 0: a log holds none of them. A new cohort's wallet is lognormal with
    the rate multiplier's mean (1) and variance (``1 / r``), times ``V``.
The neutral point
    A log holds no retention spend, so the spend response (M1)-(M6) is the package's
    documented assumption, taken from the base config, with perceived-performance noise and
    fit set to 0 and ``base_performance = initial_expectation`` in both segments. Without
    spend, disconfirmation is then 0 every period, satisfaction stays at 1/2 and loyalty at its
    neutral value, so (M7) gives exactly the fitted transitions: the reference policy
    ``none`` reproduces the fitted dynamics. Spend raises perceived performance, hence
    satisfaction and loyalty, and moves the transitions through (M7).
Snapshot
    Per customer, the filtered joint distribution of (stage, class, rate multiplier, exit
    frailty) at the last calibration period, moved one period on (the snapshot is the state at
    the first period after the calibration end, the period the projection starts in), is
    sampled once with the customer's own random stream (component
    :data:`COMPONENT_SNAPSHOT`); customers drawn as ended are left out. Segment, stage and
    wallet (``V u``) come from the draw, tenure is the periods since the first purchase,
    satisfaction 1/2, expectation ``initial_expectation``, fit 0, the ABC tier from the
    snapshot's wallet quantiles.

With satisfaction feedback off (``feedback=False``: loyalty effects 0) the simulated expected
cash per period equals the fitted model's forecast under any policy; with feedback on, under
the policy ``none`` (tests/fitting/test_bridge.py checks both within 4 standard errors).

The mapping is exact for fits with at most two latent types (one or two classes without an
exit frailty, or one class with a two-point frailty); otherwise (a gamma exit frailty, or two
classes with a frailty) it is an approximation, and :attr:`FittedCustomerBase.exact` is False
with the reason in :attr:`FittedCustomerBase.notes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sim.data.customers import CustomerData, unit_length
from sim.model.arrays import ROW_MARGIN, ROW_SOW, model_arrays
from sim.model.config import ExperimentConfig, config_from_dict, config_to_toml
from sim.model.names import STAGES
from sim.model.streams import stream_uniforms

__all__ = [
    "COMPONENT_SNAPSHOT",
    "DAYS_PER_MONTH",
    "FITTED_CONFIG",
    "SNAPSHOT",
    "PROJECTION_YEARS",
    "FittedCustomerBase",
    "fitted_customer_base",
]

#: Random-stream component of the snapshot draws (see :mod:`sim.model.streams`).
COMPONENT_SNAPSHOT = 17

#: Days of one month of ``economics.period_months`` (365.25 / 12, as the data's ``month``).
DAYS_PER_MONTH = 365.25 / 12.0

#: File names ``sim fit`` writes the fitted config and its snapshot to.
FITTED_CONFIG = "fitted_config.toml"
SNAPSHOT = "snapshot.csv"

#: Years the fitted config projects (``run.horizon`` = this many years of periods).
PROJECTION_YEARS = 5

# states of the fit: exploration, formation, stability, decline, ended
_ENDED = 4
# (from, to) of each segment's advance and exit move per live stage (None: no such move)
_ADVANCE = ((0, 1), (1, 2), None, (3, 1))
_EXIT = ((0, 4), (1, 3), (2, 3), (3, 4))


@dataclass(frozen=True)
class FittedCustomerBase:
    """An experiment config and a snapshot of live customers built from a lifecycle fit.

    Attributes
    ----------
    config : ExperimentConfig
        The fitted config; ``population.snapshot`` is :data:`SNAPSHOT` (relative to the
        config file, as written by :meth:`save`).
    snapshot : DataFrame
        One row per customer alive at the first period after the calibration end, with the
        columns of :data:`sim.runs.snapshot.SNAPSHOT_COLUMNS` plus ``customer_id`` (the log's
        id) and ``p_alive`` (the fit's probability that the customer is alive then).
    segments : DataFrame
        Per simulator segment: the fit's class, the exit frailty its transitions are taken at,
        its share of new customers, its transitions and revenue per period by stage.
    wallet_scale : float
        ``V``: the largest revenue per period of a stage at rate multiplier 1; the wallet is
        ``V`` times the multiplier.
    money_scale : float
        The factor applied to the base config's money amounts of the spend response (policy
        spends, ``dynamics.care_scale``, the optimiser's bounds); 1 with an explicit base.
    exact : bool
        Whether the config reproduces the fitted model exactly (see the module docstring).
    notes : tuple of str
        What is approximated, and why.
    start_period_end : str
        Last day of the period the snapshot is taken in (the first period after the
        calibration end).
    fitted_margin_by_period : ndarray
        The fitted model's own expected margin per period (summed over every calibration
        customer, the snapshot's periods 0, 1, ...; at most :data:`PROJECTION_YEARS` years),
        for comparison with the simulated one.
    """

    config: ExperimentConfig
    snapshot: pd.DataFrame = field(repr=False)
    segments: pd.DataFrame = field(repr=False)
    wallet_scale: float
    money_scale: float
    exact: bool
    notes: tuple[str, ...]
    start_period_end: str
    fitted_margin_by_period: np.ndarray = field(repr=False)

    def margin_table(self, projection) -> pd.DataFrame:
        """The simulated margin per period of the snapshot beside the fit's own forecast.

        Parameters
        ----------
        projection : ProjectionResult
            :func:`sim.project_from` of :attr:`snapshot` with :attr:`config` (any policies).

        Returns
        -------
        DataFrame
            ``policy, period, simulated_margin, fitted_margin``: per policy and period, the
            snapshot's simulated gross margin (profit plus retention spend, summed over the
            snapshot's customers, mean over replications) and the fitted model's expected margin
            of the same period (the same for every policy: the fit knows no spend). Under the
            reference policy ``none`` the two agree within simulation error (docs/model.md §13.3).
        """
        trajectory = projection.trajectory
        per_active = (trajectory["profit_mean"] + trajectory["spend_mean"]).fillna(0.0)
        periods = trajectory["period"].to_numpy()
        fitted = np.full(len(trajectory), np.nan)
        known = periods < len(self.fitted_margin_by_period)
        fitted[known] = self.fitted_margin_by_period[periods[known]]
        return pd.DataFrame(
            {
                "policy": trajectory["policy"].to_numpy(),
                "period": periods,
                "simulated_margin": (per_active * trajectory["active_share"]).to_numpy() * len(self.snapshot),
                "fitted_margin": fitted,
            }
        )

    def config_toml(self) -> str:
        """The config as TOML, with a header saying where it comes from."""
        header = [
            "Fitted by sim fit: stage dynamics and cash flows of the lifecycle HMM (sim.fitting.bridge,",
            "docs/model.md §13); the spend response is the package's documented assumption.",
            f"Projects the live customers of {SNAPSHOT} from the period ending {self.start_period_end} on.",
            f"Exact: {'yes' if self.exact else 'no'}. " + " ".join(self.notes),
            f"Run: sim run {FITTED_CONFIG}",
        ]
        return config_to_toml(self.config, header=header)

    def files(self) -> dict[str, str]:
        """``{file name: text}`` of the fitted config and its snapshot."""
        return {FITTED_CONFIG: self.config_toml(), SNAPSHOT: self.snapshot.to_csv(index=False)}

    def save(self, directory: str | Path, *, force: bool = False) -> Path:
        """Write :data:`FITTED_CONFIG` and :data:`SNAPSHOT` into ``directory`` (atomically).

        Parameters
        ----------
        directory : str or Path
            An existing or new folder.
        force : bool, default False
            Overwrite the two files if they exist.

        Returns
        -------
        Path
            The config file.

        Raises
        ------
        FileExistsError
            If a file exists and ``force`` is false.
        """
        from sim.io.results import atomic_write_text

        directory = Path(directory)
        files = self.files()
        existing = [name for name in files if (directory / name).exists()]
        if existing and not force:
            raise FileExistsError(
                f"{directory} already holds {', '.join(existing)}; choose another folder or pass force=True"
            )
        directory.mkdir(parents=True, exist_ok=True)
        for name in (SNAPSHOT, FITTED_CONFIG):  # the config last: it names the snapshot
            atomic_write_text(directory / name, files[name])
        return directory / FITTED_CONFIG


# --------------------------------------------------------------------------- latent types


def _segment_types(params) -> tuple[list[tuple[int, float, float]], bool, list[str]]:
    """The simulator segments as ``(class, exit frailty, share)``, whether the mapping is exact,
    and notes.
    """
    from sim.fitting.lifecycle.params import gamma_quadrature

    C = params.n_classes
    pi = np.asarray(params.class_probs, dtype=float)
    if C > 2:
        raise ValueError(
            f"the lifecycle fit has {C} classes; the simulator has two segments (relationship, "
            "transactional): fit with one or two classes (candidates with classes 1 or 2)"
        )
    discrete = params.exit_support is not None
    gamma = params.exit_shape is not None
    if not discrete and not gamma:
        return [(c, 1.0, float(pi[c])) for c in range(C)], True, []
    if C == 1:
        if discrete:
            support = np.asarray(params.exit_support, dtype=float)
            weights = np.asarray(params.exit_weights, dtype=float)
            if support.size > 2:
                raise ValueError(
                    f"the lifecycle fit has a {support.size}-point exit frailty; the simulator's two "
                    "segments hold at most two: fit with a two-point or gamma frailty"
                )
            order = np.argsort(support)
            return [(0, float(support[m]), float(weights[m])) for m in order], True, []
        nodes, weights = gamma_quadrature(params.exit_shape, 2)
        return (
            [(0, float(nodes[m]), float(weights[m])) for m in np.argsort(nodes)],
            False,
            [
                f"The gamma exit frailty (shape {params.exit_shape:.4g}) is carried by the two segments "
                "at its two-point Gauss quadrature (low frailty = relationship): the cohort's survival "
                "is approximated, and each snapshot customer takes the segment nearest her drawn frailty."
            ],
        )
    mean_v = 1.0 if gamma else float(np.dot(params.exit_support, params.exit_weights))
    return (
        [(c, mean_v, float(pi[c])) for c in range(C)],
        False,
        [
            "Two classes with an exit frailty make more latent types than the simulator's two "
            f"segments: each class's transitions are taken at the mean frailty ({mean_v:.4g})."
        ],
    )


def _end_distribution(fit, data: CustomerData):
    """Per distinct calibration sequence, P(state at the first period after calibration, block);
    each block's class, rate multiplier and exit frailty; each customer's sequence.
    """
    model = fit._model_for(data)
    joint, _, arrays = model._filtered()  # P(state at the last calibration period, block)
    C, Qu, Qv = arrays["dims"]
    block_class = np.repeat(np.arange(C), Qu * Qv)
    block_u = np.tile(np.repeat(np.asarray(arrays["u"], dtype=float), Qv), C)
    block_v = np.tile(np.asarray(arrays["v"], dtype=float), C * Qu)
    moved = np.empty_like(joint)
    for j in range(joint.shape[2]):
        transitions = fit.transitions_at(block_v[j])[block_class[j]]
        moved[:, :, j] = joint[:, :, j] @ transitions
    return moved, block_class, block_u, block_v, np.asarray(model.data_.customer_sequence)


def _draw_states(probabilities, customer_sequence, uniforms, chunk: int = 65_536):
    """Inverse-CDF draw of one flattened (state, block) cell per customer."""
    flat = probabilities.reshape(probabilities.shape[0], -1)
    cumulative = np.cumsum(flat, axis=1)
    cumulative /= cumulative[:, -1:]
    cells = np.empty(len(customer_sequence), dtype=np.int64)
    for start in range(0, len(cells), chunk):
        rows = cumulative[customer_sequence[start : start + chunk]]
        u = uniforms[start : start + chunk, None]
        cells[start : start + chunk] = np.minimum((rows <= u).sum(axis=1), flat.shape[1] - 1)
    return cells


def _check_margin(margin) -> tuple[float, float, float, float] | None:
    if margin is None:
        return None
    values = (margin,) * 4 if np.isscalar(margin) else tuple(margin)
    if len(values) != 4:
        raise ValueError(f"margin = {margin!r}: give one rate, or one per stage ({', '.join(STAGES)})")
    out = []
    for stage, value in zip(STAGES, values):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"margin.{stage} = {value!r}: must be a number in (0, 1]")
        if not (0.0 < float(value) <= 1.0):
            raise ValueError(
                f"margin.{stage} = {value!r}: must be in (0, 1] (a gross margin rate on revenue)"
            )
        out.append(float(value))
    return tuple(out)


def _scaled_policy(policy: dict, factor: float) -> dict:
    """A policy (as data) with every money amount times ``factor``."""
    scaled = dict(policy)
    kind = policy["kind"]
    if kind in ("uniform", "reactive"):
        scaled["spend"] = policy["spend"] * factor
    elif kind == "stage":
        scaled["spend"] = {stage: value * factor for stage, value in policy["spend"].items()}
    elif kind == "table":
        for segment in ("relationship", "transactional"):
            scaled[segment] = {stage: value * factor for stage, value in policy[segment].items()}
    elif kind == "value":
        scaled["tier_spend"] = {tier: value * factor for tier, value in policy["tier_spend"].items()}
    return scaled


def _base_margin_per_period(base: ExperimentConfig) -> float:
    """The base config's mean margin per period over the four stages, at the mean wallet
    (share of wallet and margin by stage and segment from :func:`sim.model.arrays.model_arrays`,
    the segments weighted by their shares).
    """
    arrays = model_arrays(base)
    share = base.population.relationship_share
    per_segment = arrays.stage[ROW_SOW, :4, :] * arrays.stage[ROW_MARGIN, :4, :]  # (stage, segment)
    mixed = share * per_segment[:, 0] + (1 - share) * per_segment[:, 1]
    return float(base.population.mean_wallet * np.mean(mixed))


# --------------------------------------------------------------------------- the bridge


def fitted_customer_base(
    fit,
    data: CustomerData,
    *,
    margin=None,
    base: ExperimentConfig | None = None,
    money_scale: float | str | None = None,
    feedback: bool = True,
    seed: int | None = None,
    horizon: int | None = None,
    name: str = "fitted_customer_base",
) -> FittedCustomerBase:
    """The experiment config and snapshot of a fitted lifecycle model (module docstring).

    Parameters
    ----------
    fit : LifecycleFit
        ``FitResult.fits["lifecycle"]``, fitted to ``data``.
    data : CustomerData
        The calibration cohort the model was fitted to (its customers make the snapshot).
    margin : float or sequence of 4 floats, optional
        Gross margin rate on revenue, one for every stage or one per stage, in (0, 1]
        (default: the base config's ``economics.margin``).
    base : ExperimentConfig, optional
        Where the spend response (dynamics, loyalty curve, loyalty effects), the policies, the
        discount rate and the run settings come from (default: the package's defaults).
    money_scale : float or "auto", optional
        Factor on the base config's money amounts of the spend response. ``"auto"``: the fitted
        mean margin per period over the four stages divided by the base model's (at its mean
        wallet), so that spends keep their size relative to the customers' margin on any log.
        Default: ``"auto"`` with the package defaults; 1 with an explicit ``base`` (its amounts
        are taken to be in the log's money per period already).
    feedback : bool, default True
        Satisfaction feedback on the transitions; False sets both loyalty effects to 0
        (spend then changes nothing but its cost).
    seed : int, optional
        Seed of the snapshot draws and of the config's run (default: the base's ``run.seed``).
    horizon : int, optional
        Periods projected (default :data:`PROJECTION_YEARS` years of periods).
    name : str, default "fitted_customer_base"
        The config's name.

    Returns
    -------
    FittedCustomerBase

    Raises
    ------
    ValueError
        For a fit with more than two latent classes or a frailty the two segments cannot hold,
        a fit with all purchase rates 0, or a margin outside (0, 1].
    """
    from sim.fitting.lifecycle.registry import LifecycleFit

    if not isinstance(fit, LifecycleFit):
        raise TypeError(f"fit must be a LifecycleFit (FitResult.fits['lifecycle']), got {type(fit).__name__}")
    margins = _check_margin(margin)
    explicit_base = base is not None
    base = ExperimentConfig() if base is None else base
    if not isinstance(base, ExperimentConfig):
        raise TypeError(f"base must be an ExperimentConfig (sim.load_config), got {type(base).__name__}")
    params = fit.lifecycle_params
    types, exact, notes = _segment_types(params)
    margins = margins if margins is not None else base.economics.margin.as_tuple()
    period_months = unit_length(data.unit) / DAYS_PER_MONTH
    seed = base.run.seed if seed is None else int(seed)

    spend = fit.spend_per_purchase
    if spend is None:
        spend = np.ones(4)
        notes.append("The log has no amounts: cash is counted in purchases (spend per purchase 1).")
    spend = np.asarray(spend, dtype=float)
    rates = np.asarray(fit.purchase_rates, dtype=float)  # (C, 4)
    revenue = np.array([rates[c] * spend for c, _, _ in types])  # (segments, 4), multiplier 1
    wallet_scale = float(revenue.max())
    if not wallet_scale > 0:
        raise ValueError("the lifecycle fit has every purchase rate 0: there is no revenue to simulate")
    share_of_wallet = revenue / wallet_scale

    def moves(c, v):
        matrix = fit.transitions_at(v)[c]
        advance = [0.0 if move is None else float(matrix[move]) for move in _ADVANCE]
        leave = [float(matrix[move]) for move in _EXIT]
        for k in range(4):  # rounding: the two competing moves sum to at most 1
            total = advance[k] + leave[k]
            if total > 1.0:
                advance[k], leave[k] = advance[k] / total, leave[k] / total
        return dict(zip(STAGES, advance)), dict(zip(STAGES, leave))

    segment_moves = [moves(c, v) for c, v, _ in types]
    while len(types) < 2:  # one latent type: both segments the same, every customer relationship
        types = types + [types[0][:2] + (0.0,)]
        segment_moves.append(segment_moves[0])
        share_of_wallet = np.vstack([share_of_wallet, share_of_wallet[:1]])
        revenue = np.vstack([revenue, revenue[:1]])
    shares = np.array([share for _, _, share in types])
    relationship_share = float(min(max(shares[0] / shares.sum(), 0.0), 1.0))

    # ---- money: the base's spend response in the log's money
    fitted_margin_rate = float(np.dot(shares / shares.sum(), revenue @ np.asarray(margins)) / 4.0)
    if money_scale is None:
        money_scale = 1.0 if explicit_base else "auto"
    if isinstance(money_scale, str):
        if money_scale != "auto":
            raise ValueError(f"money_scale = {money_scale!r}: give a positive number or 'auto'")
        money_scale = fitted_margin_rate / _base_margin_per_period(base)
    money_scale = float(money_scale)
    if not (math.isfinite(money_scale) and money_scale > 0):
        raise ValueError(f"money_scale = {money_scale!r}: must be a positive number")

    # ---- the snapshot
    moved, block_class, block_u, block_v, customer_sequence = _end_distribution(fit, data)
    n = len(customer_sequence)
    uniforms = stream_uniforms(seed, 0, np.arange(n, dtype=np.int64), COMPONENT_SNAPSHOT, 1)[:, 0]
    cells = _draw_states(moved, customer_sequence, uniforms)
    n_blocks = moved.shape[2]
    state, block = cells // n_blocks, cells % n_blocks
    segment_of_block = np.empty(n_blocks, dtype=np.int64)
    for j in range(n_blocks):
        candidates = [g for g, (c, _, share) in enumerate(types) if c == block_class[j] and share > 0]
        candidates = candidates or [g for g, (c, _, _) in enumerate(types) if c == block_class[j]]
        distance = [abs(math.log(types[g][1]) - math.log(block_v[j])) for g in candidates]
        segment_of_block[j] = candidates[int(np.argmin(distance))]
    alive = state != _ENDED
    panel = data.panel
    tenure = panel.n_calibration_periods - np.asarray(panel.entry_period, dtype=np.int64)
    wallet = wallet_scale * block_u[block]
    p_alive = 1.0 - moved[:, _ENDED, :].sum(axis=1)[customer_sequence]
    dynamics = base.dynamics
    snapshot = pd.DataFrame(
        {
            "customer": np.flatnonzero(alive),
            "customer_id": np.asarray(data.customer_id)[alive],
            "segment": segment_of_block[block][alive],
            "wallet": wallet[alive],
            "fit": 0.0,
            "stage": state[alive],
            "satisfaction": 0.5,
            "previous_satisfaction": 0.5,
            "expectation": dynamics.initial_expectation,
            "tenure": tenure[alive],
            "p_alive": p_alive[alive],
        }
    )
    if len(snapshot) == 0:
        raise ValueError("no customer is drawn alive after the calibration end: there is nothing to project")
    tier_a, tier_b = np.quantile(snapshot["wallet"], [0.95, 0.80])
    snapshot.insert(
        5, "tier", np.where(snapshot["wallet"] >= tier_a, 0, np.where(snapshot["wallet"] >= tier_b, 1, 2))
    )

    # ---- the config
    rate_shape = fit.rate_shape
    wallet_sigma = 0.0 if rate_shape is None else math.sqrt(math.log1p(1.0 / rate_shape))
    if wallet_sigma > 4.0:
        notes.append(
            f"The rate multiplier's variance 1/r = {1 / rate_shape:.3g} needs a wallet log-sd of "
            f"{wallet_sigma:.3g}; capped at 4 (the config's limit) for new cohorts."
        )
        wallet_sigma = 4.0
    wallet_median = wallet_scale * math.exp(-0.5 * wallet_sigma**2)
    if horizon is None:
        horizon = math.ceil(PROJECTION_YEARS * 12 / period_months)
    data_dump = base.model_dump(mode="python")
    policies = [_scaled_policy(policy, money_scale) for policy in data_dump["policies"]]
    reference = base.comparison.reference
    if reference is None:
        reference = next((policy["name"] for policy in policies if policy["kind"] == "none"), None)
    optimize = dict(data_dump["optimize"])
    optimize["max_spend"] = optimize["max_spend"] * money_scale
    optimize["start"] = {stage: value * money_scale for stage, value in optimize["start"].items()}
    precision = dict(data_dump["precision"])
    if precision["target_ci_halfwidth"] is not None:
        precision["target_ci_halfwidth"] *= money_scale
    by_segment = {
        segment: {"advance": advance, "exit": leave}
        for segment, (advance, leave) in zip(("relationship", "transactional"), segment_moves)
    }
    first_advance, first_exit = segment_moves[0]
    description = (
        f"Lifecycle HMM {fit.hmm.name} fitted to {data.n_customers:,} customers by sim fit "
        f"({data.unit}ly periods); {len(snapshot):,} live customers projected"
    )[:400]
    config = config_from_dict(
        {
            **{key: value for key, value in data_dump.items() if key not in ("sweep",)},
            "name": name,
            "description": description,
            "engine": "core",
            "population": {
                **data_dump["population"],
                "customers": len(snapshot),
                "relationship_share": relationship_share,
                "wallet_median": wallet_median,
                "wallet_sigma": wallet_sigma,
                "churn_propensity": None,
                "snapshot": SNAPSHOT,
            },
            "dynamics": {
                **data_dump["dynamics"],
                "performance_fit_sd": 0.0,
                "performance_noise": 0.0,
                "base_performance": {
                    "relationship": dynamics.initial_expectation,
                    "transactional": dynamics.initial_expectation,
                },
                "care_scale": max(dynamics.care_scale * money_scale, 1e-9),
            },
            "transitions": {
                **data_dump["transitions"],
                "advance": {**first_advance, "stability": 0.0, "decline": 0.0},
                "exit": {**first_exit, "decline": 0.0},
                "win_back": first_advance["decline"],
                "churn": first_exit["decline"],
                "exit_odds": {"relationship": 1.0, "transactional": 1.0},
                "by_segment": by_segment,
                **({} if feedback else {"loyalty_effect_advance": 0.0, "loyalty_effect_exit": 0.0}),
            },
            "word_of_mouth": {**data_dump["word_of_mouth"], "talk_probability": 0.0},
            "economics": {
                **data_dump["economics"],
                "period_months": period_months,
                "margin": dict(zip(STAGES, margins)),
                "share_of_wallet": dict(zip(STAGES, share_of_wallet[0].tolist())),
                "share_of_wallet_by_segment": {
                    "relationship": dict(zip(STAGES, share_of_wallet[0].tolist())),
                    "transactional": dict(zip(STAGES, share_of_wallet[1].tolist())),
                },
                "share_of_wallet_growth": 0.0,
                "cross_sell_share": dict.fromkeys(STAGES, 0.0),
                "cost_to_serve": 0.0,
                "price_premium": {"relationship": 0.0, "transactional": 0.0},
                "acquisition_cost": {"relationship": 0.0, "transactional": 0.0},
            },
            "policies": policies,
            "comparison": {"reference": reference},
            "precision": precision,
            "optimize": optimize,
            "run": {**data_dump["run"], "horizon": int(horizon), "seed": seed},
        }
    )

    segments = pd.DataFrame(
        {
            "segment": ["relationship", "transactional"],
            "fit_class": [c + 1 for c, _, _ in types],
            "exit_frailty": [v for _, v, _ in types],
            "share": shares / shares.sum(),
            **{
                f"{kind}_{stage}": [moves_[i][stage] for moves_ in segment_moves]
                for i, kind in enumerate(("advance", "exit"))
                for stage in STAGES
            },
            **{f"revenue_{stage}": revenue[:, k] for k, stage in enumerate(STAGES)},
        }
    )
    curve = _fitted_margin_curve(
        moved, customer_sequence, block_class, block_u, fit, block_v, spend, margins, horizon
    )
    start_end = (
        panel.period_end[panel.n_calibration_periods]
        if panel.n_periods > panel.n_calibration_periods
        else None
    )
    if start_end is None:
        start_end = (
            panel.period_end[-1] + (panel.period_end[-1] - panel.period_start[-1]) + pd.Timedelta(days=1)
        )
    return FittedCustomerBase(
        config=config,
        snapshot=snapshot,
        segments=segments,
        wallet_scale=wallet_scale,
        money_scale=money_scale,
        exact=exact,
        notes=tuple(notes),
        start_period_end=str(pd.Timestamp(start_end).date()),
        fitted_margin_by_period=curve,
    )


def _fitted_margin_curve(
    moved, customer_sequence, block_class, block_u, fit, block_v, spend, margins, horizon
):
    """The fit's expected margin per period, summed over the customers, from the snapshot's
    period on: the (state, block) distribution propagated through each block's chain.
    """
    periods = int(min(horizon, 100_000))
    weight = np.bincount(customer_sequence, minlength=moved.shape[0]).astype(float)
    current = np.einsum("s,skj->kj", weight, moved)  # (5, J)
    rates = np.asarray(fit.purchase_rates, dtype=float)
    value = np.zeros((5, moved.shape[2]))
    for j in range(moved.shape[2]):
        value[:4, j] = rates[block_class[j]] * block_u[j] * spend * np.asarray(margins)
    matrices = [fit.transitions_at(block_v[j])[block_class[j]] for j in range(moved.shape[2])]
    curve = np.empty(periods)
    for h in range(periods):
        curve[h] = float((current * value).sum())
        current = np.stack([current[:, j] @ matrices[j] for j in range(moved.shape[2])], axis=1)
    return curve
