r"""A mergeable sketch of per-customer CLVs: quantiles and value concentration in O(1) memory.

Why
---
The summary's CLV quantiles and the value-concentration (ABC) table need the distribution
of every simulated customer's CLV, pooled over replications. Keeping every value costs
``8 x policies`` bytes per customer and replication (1.2 GB for 10^7 customers x 10
replications x 2 policies), and is the only part of a run whose memory grows with its size.
:class:`ClvSketch` replaces it by counts of values in fixed bins, which add exactly: a
sketch of the whole run is the sum of the sketches of its chunks, in any order, so chunking,
executors and resume never change a number (integer additions are exact and associative).

The bins
--------
The bins depend on nothing but the float format, so every chunk, worker and resumed run
uses the same ones. A finite value ``v`` with ``2^-1022 <= |v|`` lies in the bin given by
its sign, its binary exponent ``e`` and the first :data:`MANTISSA_BITS` = 10 bits of its
mantissa ``m``: ``|v|`` in ``[2^e (1 + m/1024), 2^e (1 + (m+1)/1024))``. Each bin is at
most :data:`RELATIVE_WIDTH` = 2^-10 (about 0.1 %) of its values wide. The tiny values
``|v| < 2^-1022`` (zero and subnormals) form two bins, one per sign. The bin keys
(:func:`bin_keys`) are integers in the order of the values, so sorting keys sorts bins.
Only the bins that hold a value are stored (typically a few thousand per policy).

Estimates and their error
-------------------------
* **Quantiles** (:meth:`ClvSketch.quantiles`) follow NumPy's default definition (linear
  interpolation between order statistics, ``h = (n - 1) q``). The ``j``-th order statistic
  is estimated inside the bin that holds it, spreading the bin's values evenly over its
  width; since the true value lies in that bin, the error is at most the bin width:
  ``|q_hat - q| <= 2^-10 |q|`` (or ``2^-1022`` for the tiny bins), and the same holds for
  the interpolated quantile. With Monte Carlo samples the sampling error of a quantile is
  far larger unless ``n`` exceeds about 10^8.
* **Group sums** (:meth:`ClvSketch.top_group_sums`, the ABC value shares) add, for every bin
  a rank range overlaps, the overlapped count times the mean of the evenly spread values it
  covers. Every value is replaced by a point of its own bin, so the error of a group sum is
  at most ``2^-10`` times the sum of ``|v|`` over the group. The count of negative values
  in a rank range is exact (no bin straddles zero).
"""

from __future__ import annotations

import numpy as np

__all__ = ["MANTISSA_BITS", "RELATIVE_WIDTH", "ClvSketch", "bin_keys", "bin_bounds"]

#: Mantissa bits that select a bin within one binary exponent (1024 bins per octave).
MANTISSA_BITS = 10
#: Largest width of a bin relative to the magnitude of its values.
RELATIVE_WIDTH = 2.0**-MANTISSA_BITS
#: Values binned at a time by :meth:`ClvSketch.from_values` (bounds its temporary memory).
SLICE = 1 << 14
_PER_EXPONENT = 1 << MANTISSA_BITS
_SMALLEST_NORMAL = 2.0**-1022
# key of the positive bin of exponent e and mantissa prefix m: 1 + (e + 1022) * 1024 + m
_EXPONENT_OFFSET = 1022


def bin_keys(values: np.ndarray) -> np.ndarray:
    """Integer bin keys of finite float64 ``values``, in the order of the values.

    ``0`` holds ``0 <= v < 2^-1022``, ``-1`` holds ``-2^-1022 < v < 0``; a normal positive
    value with exponent ``e`` and mantissa prefix ``m`` has key ``1 + (e + 1022) 1024 + m``
    and its negative the key ``-2 - (e + 1022) 1024 - m``. Exact integer arithmetic on the
    bits, so the same value gets the same key on every machine.

    Raises
    ------
    ValueError
        If any value is NaN or infinite (a CLV must be finite; see
        :func:`sim.tables.result.check_finite`).
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("a CLV sketch takes finite values only")
    magnitude = np.abs(values)
    bits = magnitude.view(np.uint64)
    exponent = (bits >> np.uint64(52)).astype(np.int64) - 1023
    prefix = ((bits >> np.uint64(52 - MANTISSA_BITS)) & np.uint64(_PER_EXPONENT - 1)).astype(np.int64)
    k = (exponent + _EXPONENT_OFFSET) * _PER_EXPONENT + prefix
    negative = values < 0.0
    keys = np.where(negative, -2 - k, 1 + k)
    tiny = magnitude < _SMALLEST_NORMAL
    keys[tiny] = np.where(negative[tiny], -1, 0)
    return keys


def bin_bounds(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)`` value bounds of the bins with the given keys (see :func:`bin_keys`);
    every value of a bin lies in ``[lower, upper]``.
    """
    keys = np.asarray(keys, dtype=np.int64)
    k = np.where(keys >= 1, keys - 1, -2 - keys)
    exponent = k // _PER_EXPONENT - _EXPONENT_OFFSET
    prefix = k % _PER_EXPONENT
    with np.errstate(over="ignore"):
        low_magnitude = np.ldexp(1.0 + prefix / _PER_EXPONENT, exponent)
        high_magnitude = np.minimum(
            np.ldexp(1.0 + (prefix + 1) / _PER_EXPONENT, exponent), np.finfo(float).max
        )
    lower = np.where(keys >= 1, low_magnitude, -high_magnitude)
    upper = np.where(keys >= 1, high_magnitude, -low_magnitude)
    lower = np.where(keys == 0, 0.0, np.where(keys == -1, -_SMALLEST_NORMAL, lower))
    upper = np.where(keys == 0, _SMALLEST_NORMAL, np.where(keys == -1, 0.0, upper))
    return lower, upper


class ClvSketch:
    """Counts of CLVs per bin, for each policy: a mergeable, exactly additive sketch.

    Parameters
    ----------
    n_policies : int
        Number of policies (rows of the CLV arrays it will see).

    Attributes
    ----------
    keys : list of ndarray
        Per policy, the sorted keys (:func:`bin_keys`) of the bins that hold values.
    counts : list of ndarray
        Per policy, the int64 number of values in each of those bins.

    Notes
    -----
    State: two int64 per occupied bin and policy, independent of the number of customers
    and replications once the occupied bins are reached (a few thousand for a CLV
    distribution spanning four decades). See the module docstring for the error bounds.
    """

    __slots__ = ("keys", "counts")

    def __init__(self, n_policies: int):
        self.keys = [np.zeros(0, dtype=np.int64) for _ in range(n_policies)]
        self.counts = [np.zeros(0, dtype=np.int64) for _ in range(n_policies)]

    @classmethod
    def from_values(cls, clv: np.ndarray) -> "ClvSketch":
        """The sketch of ``clv[policy, customer]`` (finite float64).

        Works through :data:`SLICE` values at a time, so its temporary memory does not grow
        with the number of customers.
        """
        clv = np.atleast_2d(np.asarray(clv, dtype=np.float64))
        sketch = cls(clv.shape[0])
        n = clv.shape[1]
        for policy in range(clv.shape[0]):
            pieces = [
                np.unique(bin_keys(clv[policy, start : start + SLICE]), return_counts=True)
                for start in range(0, n, SLICE)
            ]
            if not pieces:
                continue
            if len(pieces) == 1:
                keys, counts = pieces[0]
            else:
                unique, inverse = np.unique(
                    np.concatenate([piece[0] for piece in pieces]), return_inverse=True
                )
                keys = unique
                counts = _exact_sum_by_index(
                    inverse.reshape(-1), np.concatenate([piece[1] for piece in pieces]), len(unique)
                )
            sketch.keys[policy] = keys.astype(np.int64)
            sketch.counts[policy] = counts.astype(np.int64)
        return sketch

    @classmethod
    def from_arrays(cls, arrays: dict) -> "ClvSketch":
        """Rebuild from :meth:`to_arrays` (``sketch_policy``, ``sketch_keys``, ``sketch_counts``)."""
        policy = np.asarray(arrays["sketch_policy"], dtype=np.int64)
        n_policies = int(np.asarray(arrays["sketch_policies"]).reshape(-1)[0])
        sketch = cls(n_policies)
        for index in range(n_policies):
            rows = policy == index
            sketch.keys[index] = np.asarray(arrays["sketch_keys"], dtype=np.int64)[rows]
            sketch.counts[index] = np.asarray(arrays["sketch_counts"], dtype=np.int64)[rows]
        return sketch

    def to_arrays(self) -> dict:
        """Flat int64 arrays (for ``.npz`` chunk files and transfer between processes)."""
        return {
            "sketch_policies": np.array([len(self.keys)], dtype=np.int64),
            "sketch_policy": np.concatenate(
                [np.full(len(k), i, dtype=np.int64) for i, k in enumerate(self.keys)]
            )
            if self.keys
            else np.zeros(0, dtype=np.int64),
            "sketch_keys": np.concatenate(self.keys) if self.keys else np.zeros(0, dtype=np.int64),
            "sketch_counts": np.concatenate(self.counts) if self.counts else np.zeros(0, dtype=np.int64),
        }

    @property
    def n_policies(self) -> int:
        """Number of policies."""
        return len(self.keys)

    def total(self, policy: int) -> int:
        """Number of values seen for ``policy``."""
        return int(self.counts[policy].sum())

    def merge(self, other: "ClvSketch") -> "ClvSketch":
        """Add ``other``'s counts into this sketch (exact; the order of merges never matters)."""
        if other.n_policies != self.n_policies:
            raise ValueError(
                f"cannot merge a sketch of {other.n_policies} policies into one of {self.n_policies}"
            )
        for policy in range(self.n_policies):
            keys = np.concatenate([self.keys[policy], other.keys[policy]])
            counts = np.concatenate([self.counts[policy], other.counts[policy]])
            unique, inverse = np.unique(keys, return_inverse=True)
            self.keys[policy] = unique.astype(np.int64)
            self.counts[policy] = _exact_sum_by_index(inverse.reshape(-1), counts, len(unique))
        return self

    def quantiles(self, policy: int, levels) -> np.ndarray:
        """Estimated quantiles of ``policy``'s values at ``levels`` (NumPy's default
        definition); error at most one bin width, ``2^-10 |q|`` (module docstring).
        NaN for a policy without values.
        """
        keys, counts = self.keys[policy], self.counts[policy]
        n = int(counts.sum())
        levels = np.asarray(levels, dtype=np.float64)
        if n == 0:
            return np.full(levels.shape, np.nan)
        position = (n - 1) * levels
        below = np.floor(position)
        fraction = position - below
        first = self._order_statistics(keys, counts, below.astype(np.int64))
        second = self._order_statistics(keys, counts, np.minimum(below.astype(np.int64) + 1, n - 1))
        return first + fraction * (second - first)

    @staticmethod
    def _order_statistics(keys, counts, ranks) -> np.ndarray:
        """Estimates of the order statistics of 0-based ``ranks`` (ascending): the bin holding
        each, with the bin's values spread evenly over ``[lower, upper]``.
        """
        cumulative = np.cumsum(counts)
        bins = np.searchsorted(cumulative, ranks, side="right")
        before = cumulative[bins] - counts[bins]
        lower, upper = bin_bounds(keys[bins])
        return lower + (ranks - before + 0.5) / counts[bins] * (upper - lower)

    def top_group_sums(self, policy: int, stops) -> tuple[np.ndarray, np.ndarray]:
        """Sums and negative counts of consecutive rank groups from the top.

        ``stops`` are increasing ranks ``s_1 < s_2 < ... <= n``; group ``g`` holds the values
        ranked ``s_{g-1} .. s_g - 1`` from the largest (``s_0 = 0``). Returns ``(sums,
        negatives)``: the estimated sum of each group's values (error at most ``2^-10``
        times the group's sum of ``|v|``) and the exact number of negative values in it.
        """
        keys, counts = self.keys[policy][::-1], self.counts[policy][::-1]  # largest first
        lower, upper = bin_bounds(keys)
        top = np.cumsum(counts) - counts  # rank (from the top) of each bin's largest value
        sums, negatives = [], []
        start = 0
        for stop in stops:
            first = np.clip(start - top, 0, counts)  # overlap of [start, stop) with each bin, in
            last = np.clip(stop - top, 0, counts)  # positions counted from the bin's top
            taken = last - first
            used = taken > 0
            middle = (first[used] + last[used]) / 2.0 / counts[used]  # mean position, 0 = top
            mean = upper[used] - middle * (upper[used] - lower[used])
            sums.append(float(np.sum(taken[used] * mean)))
            negatives.append(int(taken[used][keys[used] < 0].sum()))
            start = stop
        return np.array(sums), np.array(negatives, dtype=np.int64)


def _exact_sum_by_index(inverse: np.ndarray, counts: np.ndarray, size: int) -> np.ndarray:
    """Integer sums of ``counts`` grouped by ``inverse`` (exact for any int64 counts)."""
    out = np.zeros(size, dtype=np.int64)
    np.add.at(out, inverse, counts)
    return out
