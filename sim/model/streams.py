"""Counter-free, per-customer random streams for the numba kernels.

Every random number in the simulator is drawn from a stream that belongs to one
``(seed, replication, customer, component)`` tuple, so a result never depends on
the thread count, the chunking of customers, or the order in which customers are
processed: customer 17 sees the same numbers whether it is simulated first, last,
alone or on another thread. ``component`` separates independent uses of
randomness for the same customer:

=========  ==========================================================
component  use
=========  ==========================================================
0          customer attributes (:mod:`sim.engines.core`, :mod:`sim.engines.market.engine`)
1          perceived-performance noise
2          stage transitions
3          Beta-churn draws (only when ``population.churn_propensity``
           is set)
4 .. 7     reserved for the core
8 .. 11    agent engine (:mod:`sim.engines.market.engine`): purchases, complaints,
           word of mouth, acquisition (customer ``MAX_CUSTOMER``)
12 .. 15   spare
16         purchase days of synthetic transaction logs
           (:mod:`sim.fitting.synthetic`)
17         snapshot draws of a fitted customer base
           (:mod:`sim.fitting.bridge`)
18 .. 127  spare
=========  ==========================================================

The generator is xoroshiro128+ (Blackman & Vigna 2018) with its 128-bit state held
in two ``uint64`` scalars ``(s0, s1)``. The private jitted functions take the state
and return the drawn value together with the new state, so a kernel keeps the
state in registers and no array is touched::

    s0, s1 = seed_stream(seed, replication, customer, COMPONENT_PERFORMANCE)
    for t in range(n_periods):
        z, s0, s1 = next_normal(s0, s1)

Reproducibility contract
------------------------
The mapping from a tuple to its stream (:func:`seed_stream`), the bits each
variate consumes (:func:`next_uniform`, :func:`next_normal`, :func:`next_exponential`) and the
ziggurat tables are fixed. Changing any of them changes every simulated result;
``tests/model/test_model_streams.py`` pins them with reference values. Integer arithmetic is
exact, so the raw streams are bitwise identical on every platform; the normal and
exponential variates call ``exp``/``log1p`` and are bitwise identical for a given
platform math library (in practice everywhere numba runs on glibc/LLVM).

Numba pitfall
-------------
Mixing ``uint64`` with a plain Python ``int`` literal promotes to ``float64`` in
numba and silently destroys the generator. Every constant below is therefore a
``np.uint64`` and every shift amount is a ``np.uint64``; the tests compare the
compiled functions with pure-Python references that mask to 64 bits.
"""

from __future__ import annotations

import math
import operator

import numpy as np
from numba import njit

__all__ = [
    "COMPONENT_ATTRIBUTES",
    "COMPONENT_TRANSITIONS",
    "MAX_SEED",
    "MAX_REPLICATION",
    "MAX_CUSTOMER",
    "MAX_COMPONENT",
    "CustomerStream",
    "stream_uniforms",
    "stream_normals",
    "stream_exponentials",
    "checked_int",
]

# ----------------------------------------------------------------------------
# Stream components and the ranges the seed derivation can keep distinct
# ----------------------------------------------------------------------------

#: Every random-stream component of the package, in one place (the table above): the core's
#: attributes, perceived-performance noise, transitions and Beta churn; the agent engine's
#: purchases, complaints, word of mouth and acquisition; the synthetic logs' purchase days.
COMPONENT_ATTRIBUTES = 0
COMPONENT_PERFORMANCE = 1
COMPONENT_TRANSITIONS = 2
COMPONENT_CHURN = 3
COMPONENT_PURCHASES = 8
COMPONENT_COMPLAINTS = 9
COMPONENT_WORD_OF_MOUTH = 10
COMPONENT_ACQUISITION = 11
COMPONENT_TRANSACTION_DAY = 16

# The four integers are packed without overlap into 128 bits (see seed_stream):
# 64 bits of seed, 24 of replication, 32 of customer, 7 of component, 1 marker bit.
MAX_SEED = 2**64 - 1
MAX_REPLICATION = 2**24 - 1
MAX_CUSTOMER = 2**32 - 1
MAX_COMPONENT = 2**7 - 1

# ----------------------------------------------------------------------------
# 64-bit constants (all np.uint64: see the numba pitfall in the module docstring)
# ----------------------------------------------------------------------------

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64 increment, 2**64 / golden ratio
_MIX_MULTIPLIER_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_MULTIPLIER_2 = np.uint64(0x94D049BB133111EB)

_SHIFT_1 = np.uint64(1)
_SHIFT_3 = np.uint64(3)
_SHIFT_8 = np.uint64(8)
_SHIFT_11 = np.uint64(11)
_SHIFT_16 = np.uint64(16)
_SHIFT_24 = np.uint64(24)
_SHIFT_27 = np.uint64(27)
_SHIFT_30 = np.uint64(30)
_SHIFT_31 = np.uint64(31)
_SHIFT_37 = np.uint64(37)
_SHIFT_40 = np.uint64(40)
_SHIFT_55 = np.uint64(55)
_SHIFT_56 = np.uint64(56)
_SHIFT_64 = np.uint64(64)

_ONE = np.uint64(1)
_TWO = np.uint64(2)
_LOW_52_BITS = np.uint64((1 << 52) - 1)
# Bit 0 of the packed second word (see seed_stream). The single 128-bit input that
# the bijective mixing sends to the all-zero state has bit 0 set, so fixing the
# marker at 0 means no valid tuple can produce that state. The test suite inverts
# the mixing and checks this.
_MARKER_BIT = np.uint64(0)

_TWO_POW_MINUS_53 = 2.0**-53

# ----------------------------------------------------------------------------
# SplitMix64 and the seed derivation
# ----------------------------------------------------------------------------


@njit(cache=True)
def _rotate_left(x, k):
    """Rotate the uint64 ``x`` left by the uint64 ``k`` bits (0 < k < 64)."""
    return (x << k) | (x >> (_SHIFT_64 - k))


@njit(cache=True)
def _mix64(z):
    """SplitMix64 output function (Stafford's "Mix13" finaliser): a bijection of uint64."""
    z = (z ^ (z >> _SHIFT_30)) * _MIX_MULTIPLIER_1
    z = (z ^ (z >> _SHIFT_27)) * _MIX_MULTIPLIER_2
    return z ^ (z >> _SHIFT_31)


@njit(cache=True)
def splitmix64(x):
    """One step of SplitMix64: return ``(output, next_state)``.

    ``x_next = x + 0x9E3779B97F4A7C15 (mod 2**64)`` and ``output = mix64(x_next)``,
    exactly as ``next()`` in Vigna's ``splitmix64.c`` (Steele, Lea & Flood 2014).
    Jit-compiled; ``x`` must be a ``uint64``.
    """
    x_next = x + _GOLDEN_GAMMA
    return _mix64(x_next), x_next


@njit(cache=True)
def _feistel_round(x, round_number):
    """Round function of the seed mixing: first SplitMix64 output seeded at
    ``x + round_number * gamma``, i.e. ``mix64(x + (round_number + 1) * gamma)``.
    """
    output, _ = splitmix64(x + round_number * _GOLDEN_GAMMA)
    return output


@njit(cache=True)
def seed_stream(seed, replication, customer, component):
    """Derive the xoroshiro128+ state of one ``(seed, replication, customer, component)``.

    Parameters
    ----------
    seed : int
        Experiment seed, ``0 <= seed < 2**64``.
    replication : int
        Replication index, ``0 <= replication < 2**24``.
    customer : int
        Customer index, ``0 <= customer < 2**32``.
    component : int
        Random component, ``0 <= component < 2**7`` (0 attributes, 1 noise,
        2 transitions, 3 Beta churn, 8-11 agent engine, 12.. spare; module docstring).

    Returns
    -------
    s0, s1 : uint64
        The initial xoroshiro128+ state; never both zero.

    Notes
    -----
    Jit-compiled; the ranges are **not** checked here (the public helpers check
    them). The derivation is part of the reproducibility contract:

    1. Pack the tuple without overlap into two 64-bit words::

           a = seed
           b = replication << 40 | customer << 8 | component << 1

       (bit 0 of ``b``, the marker bit, is always 0.)

    2. Mix the 128-bit word ``(a, b)`` by a three-round Feistel network whose
       round function is SplitMix64 (Steele, Lea & Flood 2014),
       ``F_k(x) = splitmix64_output(x + k * 0x9E3779B97F4A7C15)``
       ``= mix64(x + (k + 1) * 0x9E3779B97F4A7C15)`` (all mod 2**64)::

           b ^= F_0(a)
           a ^= F_1(b)
           b ^= F_2(a)
           (s0, s1) = (a, b)

    Each round is invertible, so the map from packed tuples to states is a
    bijection: distinct tuples (within the ranges) give distinct states. Three
    rounds let a change in any input bit reach both halves through at least one
    full ``mix64`` avalanche (Luby & Rackoff 1988 use three rounds for the same
    reason). The only packed input mapped to the all-zero state has marker bit
    1, which no valid tuple has, so the state is never all-zero.
    """
    a = np.uint64(seed)
    b = (
        (np.uint64(replication) << _SHIFT_40)
        | (np.uint64(customer) << _SHIFT_8)
        | (np.uint64(component) << _SHIFT_1)
        | _MARKER_BIT
    )
    b ^= _feistel_round(a, np.uint64(0))
    a ^= _feistel_round(b, _ONE)
    b ^= _feistel_round(a, _TWO)
    return a, b


# ----------------------------------------------------------------------------
# xoroshiro128+ and the variates
# ----------------------------------------------------------------------------


@njit(cache=True)
def next_uint64(s0, s1):
    """One xoroshiro128+ step: return ``(value, s0, s1)``.

    Blackman & Vigna (2018), 2018 parameters ``a=24, b=16, c=37``, exactly as
    ``next()`` in Vigna's ``xoroshiro128plus.c``. Jit-compiled; ``s0`` and ``s1``
    must be ``uint64``. The lowest bits of xoroshiro128+ have low linear
    complexity, so the variates below use the high bits.
    """
    value = s0 + s1
    s1 ^= s0
    new_s0 = _rotate_left(s0, _SHIFT_24) ^ s1 ^ (s1 << _SHIFT_16)
    new_s1 = _rotate_left(s1, _SHIFT_37)
    return value, new_s0, new_s1


@njit(cache=True)
def next_uniform(s0, s1):
    """Uniform double in [0, 1): the top 53 bits of one draw times 2**-53.

    Returns ``(u, s0, s1)``. Jit-compiled. This is the conversion recommended by
    Vigna for xoroshiro128+ (the weak low bits are discarded).
    """
    value, s0, s1 = next_uint64(s0, s1)
    return np.float64(value >> _SHIFT_11) * _TWO_POW_MINUS_53, s0, s1


@njit(cache=True)
def next_exponential(s0, s1):
    """Standard exponential variate ``-log1p(-u)`` (inversion); ``(x, s0, s1)``.

    ``1 - u`` lies in (0, 1], so the result is finite. Jit-compiled.
    """
    u, s0, s1 = next_uniform(s0, s1)
    return -math.log1p(-u), s0, s1


# --- Ziggurat tables (Marsaglia & Tsang 2000, 256 layers) ---------------------
#
# The density f(x) = exp(-x**2 / 2) on x >= 0 is covered by 256 layers of equal
# area V: a base layer (a rectangle of height f(R) plus the tail x > R) and 255
# rectangles stacked above it. x_i is the right edge of layer i; layer 255 sits on
# the base (x_255 = R) and layer 1 is the top one (x_0 = 0, f(x_0) = 1). The base
# layer is given the virtual width Q = V / f(R) so that it can be sampled like the
# others. R and V are Marsaglia & Tsang's published constants for 256 layers; with
# them the top layer's area matches V to a relative 1e-9 (the usual residual).

_ZIGGURAT_LAYERS = 256
_ZIGGURAT_R = 3.6541528853610088
_ZIGGURAT_INV_R = 1.0 / _ZIGGURAT_R
_ZIGGURAT_V = 4.92867323399e-3


def _ziggurat_tables():
    """Return (accept_below, width_per_unit, height), each of length 256.

    For a 52-bit integer ``j`` drawn in layer ``i``, ``x = j * width_per_unit[i]``
    and ``x`` is accepted at once when ``j < accept_below[i]`` (that part of the
    layer lies entirely under the curve). ``height[i] = f(x_i)``.
    """
    scale = float(2**52)

    def density(x):
        return math.exp(-0.5 * x * x)

    edges = np.zeros(_ZIGGURAT_LAYERS)  # edges[0] = x_0 = 0 (top of layer 1)
    edges[-1] = _ZIGGURAT_R
    for layer in range(_ZIGGURAT_LAYERS - 2, 0, -1):
        # Equal areas: V = x_{i+1} * (f(x_i) - f(x_{i+1})), solved for x_i.
        upper = edges[layer + 1]
        edges[layer] = math.sqrt(-2.0 * math.log(_ZIGGURAT_V / upper + density(upper)))

    base_width = _ZIGGURAT_V / density(_ZIGGURAT_R)
    accept_below = np.zeros(_ZIGGURAT_LAYERS, dtype=np.uint64)
    width_per_unit = np.zeros(_ZIGGURAT_LAYERS)
    height = np.zeros(_ZIGGURAT_LAYERS)

    accept_below[0] = np.uint64(int(_ZIGGURAT_R / base_width * scale))
    width_per_unit[0] = base_width / scale
    height[0] = 1.0
    for layer in range(1, _ZIGGURAT_LAYERS):
        accept_below[layer] = np.uint64(int(edges[layer - 1] / edges[layer] * scale))
        width_per_unit[layer] = edges[layer] / scale
        height[layer] = density(edges[layer])
    return accept_below, width_per_unit, height


# Read by next_normal as compile-time constants (frozen into the compiled code).
_ZIGGURAT_ACCEPT_BELOW, _ZIGGURAT_WIDTH, _ZIGGURAT_HEIGHT = _ziggurat_tables()


@njit(cache=True)
def _normal_tail(s0, s1):
    """|x| beyond R by Marsaglia's (1964) method; returns ``(x, s0, s1)`` with x > R.

    Propose ``x = -log(U1) / R``, ``y = -log(U2)``; accept when ``2y > x**2`` and
    return ``R + x``. Uses ``-log1p(-u)`` because ``u`` may be 0.
    """
    while True:
        u, s0, s1 = next_uniform(s0, s1)
        x = -math.log1p(-u) * _ZIGGURAT_INV_R
        u, s0, s1 = next_uniform(s0, s1)
        y = -math.log1p(-u)
        if y + y > x * x:
            return _ZIGGURAT_R + x, s0, s1


@njit(cache=True)
def next_normal(s0, s1):
    """Standard normal variate by a 256-layer ziggurat; returns ``(z, s0, s1)``.

    Notes
    -----
    Marsaglia & Tsang (2000), "The ziggurat method for generating random
    variables", J. Stat. Softw. 5(8), with the tail by Marsaglia (1964). Doornik
    (2005) showed that the original code correlated the layer index with the
    value because both came from the same bits; here one 64-bit draw is split
    into disjoint fields, all from the strong high bits except the three weakest
    low bits, which are dropped:

    * bits 56-63: layer index (0-255),
    * bit 55: sign,
    * bits 3-54: 52-bit magnitude ``j``.

    About 99% of the calls return after one draw and one comparison. Rejected
    points start over with a fresh draw. Jit-compiled; ``s0``, ``s1`` are ``uint64``.
    """
    while True:
        value, s0, s1 = next_uint64(s0, s1)
        layer = np.intp(value >> _SHIFT_56)
        negative = ((value >> _SHIFT_55) & _ONE) == _ONE
        magnitude = (value >> _SHIFT_3) & _LOW_52_BITS
        x = np.float64(magnitude) * _ZIGGURAT_WIDTH[layer]
        if negative:
            x = -x
        if magnitude < _ZIGGURAT_ACCEPT_BELOW[layer]:
            return x, s0, s1  # inside the rectangle that lies under the curve
        if layer == 0:
            tail, s0, s1 = _normal_tail(s0, s1)
            return (-tail if negative else tail), s0, s1
        # Wedge between the curve and the layer's rectangle: accept x with
        # probability proportional to how far under the curve it lies.
        u, s0, s1 = next_uniform(s0, s1)
        lower = _ZIGGURAT_HEIGHT[layer]
        y = lower + u * (_ZIGGURAT_HEIGHT[layer - 1] - lower)
        if y < math.exp(-0.5 * x * x):
            return x, s0, s1


@njit(cache=True)
def next_gamma(shape, s0, s1):
    """Gamma(shape, 1) variate; returns ``(g, s0, s1)``. ``shape > 0``.

    Notes
    -----
    Marsaglia & Tsang (2000), "A simple method for generating gamma variables",
    ACM TOMS 26(3): squeeze-and-reject on ``d (1 + x/sqrt(9d))^3`` with ``d = shape - 1/3``
    and ``x`` normal. For ``shape < 1`` it uses ``Gamma(shape + 1) * U**(1/shape)``.
    Jit-compiled.
    """
    boost = 1.0
    if shape < 1.0:
        u, s0, s1 = next_uniform(s0, s1)
        boost = (1.0 - u) ** (1.0 / shape)  # 1 - u lies in (0, 1]: never 0**(1/shape)
        shape = shape + 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x, s0, s1 = next_normal(s0, s1)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u, s0, s1 = next_uniform(s0, s1)
        if u < 1.0 - 0.0331 * x * x * x * x:
            return boost * d * v, s0, s1
        if u > 0.0 and math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
            return boost * d * v, s0, s1


@njit(cache=True)
def next_beta(alpha, beta, s0, s1):
    """Beta(alpha, beta) variate as ``X / (X + Y)``, X ~ Gamma(alpha), Y ~ Gamma(beta);
    returns ``(b, s0, s1)``. Jit-compiled.
    """
    x, s0, s1 = next_gamma(alpha, s0, s1)
    y, s0, s1 = next_gamma(beta, s0, s1)
    total = x + y
    if total <= 0.0:  # both underflowed (tiny shapes): the mass sits at 0 or 1
        u, s0, s1 = next_uniform(s0, s1)
        return (1.0 if u < alpha / (alpha + beta) else 0.0), s0, s1
    return x / total, s0, s1


# ----------------------------------------------------------------------------
# Kernels behind the public helpers
# ----------------------------------------------------------------------------

_KIND_UNIFORM = 0
_KIND_NORMAL = 1
_KIND_EXPONENTIAL = 2


@njit(cache=True)
def _draw(kind, s0, s1):
    """Draw one variate of the given kind (``_KIND_*``); ``(value, s0, s1)``."""
    if kind == _KIND_NORMAL:
        return next_normal(s0, s1)
    if kind == _KIND_EXPONENTIAL:
        return next_exponential(s0, s1)
    return next_uniform(s0, s1)


@njit(cache=True)
def _fill_streams(kind, seed, replication, customers, component, out):
    """Fill ``out[row, :]`` with the first draws of customer ``customers[row]``."""
    for row in range(customers.shape[0]):
        s0, s1 = seed_stream(seed, replication, customers[row], component)
        for column in range(out.shape[1]):
            out[row, column], s0, s1 = _draw(kind, s0, s1)


# ----------------------------------------------------------------------------
# Public, checked helpers
# ----------------------------------------------------------------------------


def checked_int(name, value, maximum=None, minimum=0):
    """Return ``value`` as a Python int in [minimum, maximum] (no upper bound when
    ``maximum`` is None) or raise ValueError naming ``name``. Booleans are refused.
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer, got the boolean {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if maximum is None:
        if number < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {number}")
    elif not minimum <= number <= maximum:
        raise ValueError(f"{name} must be in [{minimum}, {maximum}], got {number}")
    return number


def _checked_customers(customers):
    """Return ``customers`` as a contiguous 1-D uint64 array of valid indices."""
    array = np.asarray(customers)
    if array.ndim != 1:
        raise ValueError(f"customers must be a 1-D array of indices, got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"customers must hold integers, got dtype {array.dtype}")
    if array.min() < 0 or array.max() > MAX_CUSTOMER:
        raise ValueError(
            f"customers must be in [0, {MAX_CUSTOMER}], got values in [{array.min()}, {array.max()}]"
        )
    return np.ascontiguousarray(array, dtype=np.uint64)


def _streams(kind, seed, replication, customers, component, n):
    """Validate the arguments, then run the kernel for one kind of variate."""
    seed = checked_int("seed", seed, MAX_SEED)
    replication = checked_int("replication", replication, MAX_REPLICATION)
    component = checked_int("component", component, MAX_COMPONENT)
    n = checked_int("n", n, np.iinfo(np.intp).max)
    customers = _checked_customers(customers)
    out = np.empty((customers.shape[0], n), dtype=np.float64)
    _fill_streams(
        kind,
        np.uint64(seed),
        np.uint64(replication),
        customers,
        np.uint64(component),
        out,
    )
    return out


def stream_uniforms(seed, replication, customers, component, n):
    """First ``n`` uniform draws in [0, 1) of each customer's stream.

    Parameters
    ----------
    seed : int
        Experiment seed, ``0 <= seed < 2**64``.
    replication : int
        Replication index, ``0 <= replication < 2**24``.
    customers : array_like of int, shape (m,)
        Customer indices, each ``0 <= customer < 2**32``.
    component : int
        Random component, ``0 <= component < 2**7`` (0 attributes,
        1 perceived-performance noise, 2 stage transitions, 3 Beta churn,
        8-11 agent engine, 12.. spare; see the module docstring).
    n : int
        Number of draws per customer, ``n >= 0``.

    Returns
    -------
    ndarray of float64, shape (m, n)
        Row ``i`` holds the first ``n`` draws of the stream of
        ``(seed, replication, customers[i], component)``; it depends only on
        that tuple, never on which other customers are requested.

    Raises
    ------
    ValueError
        If an argument is not an integer or is out of range, or ``customers``
        is not 1-D.

    Notes
    -----
    Computed by a jit-compiled kernel. xoroshiro128+ (Blackman & Vigna 2018,
    "Scrambled linear pseudorandom number generators") seeded through SplitMix64
    (Steele, Lea & Flood 2014) as documented in ``seed_stream``; each uniform is
    the top 53 bits of one 64-bit draw times ``2**-53``.
    """
    return _streams(_KIND_UNIFORM, seed, replication, customers, component, n)


def stream_normals(seed, replication, customers, component, n):
    """First ``n`` standard normal draws of each customer's stream.

    Parameters
    ----------
    seed : int
        Experiment seed, ``0 <= seed < 2**64``.
    replication : int
        Replication index, ``0 <= replication < 2**24``.
    customers : array_like of int, shape (m,)
        Customer indices, each ``0 <= customer < 2**32``.
    component : int
        Random component, ``0 <= component < 2**7`` (0 attributes,
        1 perceived-performance noise, 2 stage transitions, 3 Beta churn,
        8-11 agent engine, 12.. spare; see the module docstring).
    n : int
        Number of draws per customer, ``n >= 0``.

    Returns
    -------
    ndarray of float64, shape (m, n)
        Row ``i`` holds the first ``n`` draws of the stream of
        ``(seed, replication, customers[i], component)``; it depends only on
        that tuple, never on which other customers are requested.

    Raises
    ------
    ValueError
        If an argument is not an integer or is out of range, or ``customers``
        is not 1-D.

    Notes
    -----
    Computed by a jit-compiled kernel. 256-layer ziggurat of Marsaglia & Tsang
    (2000) with disjoint bit fields for layer, sign and value (avoiding the
    correlation found by Doornik 2005) and Marsaglia's (1964) tail method, on
    xoroshiro128+ streams (Blackman & Vigna 2018) seeded as in ``seed_stream``.
    One normal consumes one 64-bit draw about 99% of the time, more otherwise.
    """
    return _streams(_KIND_NORMAL, seed, replication, customers, component, n)


def stream_exponentials(seed, replication, customers, component, n):
    """First ``n`` standard exponential draws of each customer's stream.

    Parameters
    ----------
    seed : int
        Experiment seed, ``0 <= seed < 2**64``.
    replication : int
        Replication index, ``0 <= replication < 2**24``.
    customers : array_like of int, shape (m,)
        Customer indices, each ``0 <= customer < 2**32``.
    component : int
        Random component, ``0 <= component < 2**7`` (0 attributes,
        1 perceived-performance noise, 2 stage transitions, 3 Beta churn,
        8-11 agent engine, 12.. spare; see the module docstring).
    n : int
        Number of draws per customer, ``n >= 0``.

    Returns
    -------
    ndarray of float64, shape (m, n)
        Row ``i`` holds the first ``n`` draws of the stream of
        ``(seed, replication, customers[i], component)``; it depends only on
        that tuple, never on which other customers are requested.

    Raises
    ------
    ValueError
        If an argument is not an integer or is out of range, or ``customers``
        is not 1-D.

    Notes
    -----
    Computed by a jit-compiled kernel: ``-log1p(-u)`` (inversion) with ``u`` the
    uniform of ``stream_uniforms``, so one 64-bit xoroshiro128+ draw each.
    """
    return _streams(_KIND_EXPONENTIAL, seed, replication, customers, component, n)


class CustomerStream:
    """The random stream of one ``(seed, replication, customer, component)``.

    A small Python-callable wrapper for the SimPy agent engine and for reference
    implementations. It produces exactly the same sequence as the jit-compiled
    kernels (``stream_uniforms``, ``stream_normals``, ``stream_exponentials``, and
    any kernel that calls ``seed_stream`` then the same ``next_uniform`` /
    ``next_normal`` / ``next_exponential`` calls in the same order).

    Parameters
    ----------
    seed : int
        Experiment seed, ``0 <= seed < 2**64``.
    replication : int
        Replication index, ``0 <= replication < 2**24``.
    customer : int
        Customer index, ``0 <= customer < 2**32``.
    component : int
        Random component, ``0 <= component < 2**7``.

    Raises
    ------
    ValueError
        If an argument is not an integer or is out of range.

    Notes
    -----
    Each method calls one jit-compiled scalar function (xoroshiro128+, Blackman
    & Vigna 2018; ziggurat normals, Marsaglia & Tsang 2000) and stores the new
    state, so one call costs a numba dispatch (about a microsecond), not a
    kernel launch. Draw many numbers at once with the ``stream_*`` helpers.

    Examples
    --------
    >>> stream = CustomerStream(seed=42, replication=0, customer=7, component=1)
    >>> u = stream.uniform()
    >>> 0.0 <= u < 1.0
    True
    """

    __slots__ = ("seed", "replication", "customer", "component", "_s0", "_s1")

    def __init__(self, seed, replication, customer, component):
        self.seed = checked_int("seed", seed, MAX_SEED)
        self.replication = checked_int("replication", replication, MAX_REPLICATION)
        self.customer = checked_int("customer", customer, MAX_CUSTOMER)
        self.component = checked_int("component", component, MAX_COMPONENT)
        s0, s1 = seed_stream(
            np.uint64(self.seed),
            np.uint64(self.replication),
            np.uint64(self.customer),
            np.uint64(self.component),
        )
        self._s0, self._s1 = np.uint64(s0), np.uint64(s1)

    @property
    def state(self):
        """The current xoroshiro128+ state ``(s0, s1)`` as Python ints."""
        return int(self._s0), int(self._s1)

    def _advance(self, scalar_function):
        value, s0, s1 = scalar_function(self._s0, self._s1)
        # numba returns uint64 as Python int; keep np.uint64 so that the next call
        # dispatches to the same uint64 specialisation whatever the value.
        self._s0, self._s1 = np.uint64(s0), np.uint64(s1)
        return value

    def uniform(self):
        """Next uniform double in [0, 1).

        Returns
        -------
        float
            The top 53 bits of the next xoroshiro128+ draw times ``2**-53``.

        Notes
        -----
        Calls the jit-compiled ``next_uniform`` (Blackman & Vigna 2018).
        """
        return float(self._advance(next_uniform))

    def normal(self):
        """Next standard normal variate.

        Returns
        -------
        float
            A draw from N(0, 1).

        Notes
        -----
        Calls the jit-compiled ``next_normal``: 256-layer ziggurat (Marsaglia &
        Tsang 2000; tail by Marsaglia 1964), consuming one or more 64-bit draws.
        """
        return float(self._advance(next_normal))

    def exponential(self):
        """Next standard exponential variate (rate 1).

        Returns
        -------
        float
            ``-log1p(-u)`` for the next uniform ``u``.

        Notes
        -----
        Calls the jit-compiled ``next_exponential`` (inversion of one uniform).
        """
        return float(self._advance(next_exponential))

    def __repr__(self):
        return (
            f"CustomerStream(seed={self.seed}, replication={self.replication}, "
            f"customer={self.customer}, component={self.component})"
        )
