"""The model's ``exp`` (:mod:`sim.model.exponential`): glibc's bits, in vector lanes too."""

from __future__ import annotations

import platform

import numpy as np
from numba import njit

from sim.model.exponential import exp, exp_moderate


@njit(cache=True)
def _exp_loop(x, out):
    for index in range(x.size):  # vectorised by LLVM: the kernels' path
        out[index] = exp(x[index])


@njit(cache=True)
def _moderate_loop(x, out):
    for index in range(x.size):
        out[index] = exp_moderate(x[index])


@njit(cache=True)
def _libm_loop(x, out):
    for index in range(x.size):
        out[index] = np.exp(x[index])  # numba's exp: a call into the platform's libm


def _glibc_with_fma() -> bool:
    if platform.system() != "Linux" or platform.machine() != "x86_64" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:  # pragma: no cover
        return False
    return " fma " in flags and tuple(int(v) for v in platform.libc_ver()[1].split(".")[:2]) >= (2, 28)


def _arguments(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    special = [0.0, -0.0, 5e-324, -5e-324, 2.0**-54, -(2.0**-54), 2.0**-55, 1e-300, 511.9, 512.0, -512.0]
    special += [709.78, 709.79, 710.0, -708.39, -708.4, -709.0, -740.0, -745.13, -745.14, -746.0]
    special += [-1023.9, -1024.0, 1024.0, -1e10, 1e10, np.inf, -np.inf, np.nan, 1.0, -1.0, 60.0, -60.0]
    return np.concatenate(
        [
            special,
            rng.normal(size=200_000) * 3.0,
            rng.uniform(-60.0, 60.0, size=200_000),
            rng.uniform(-1100.0, 1100.0, size=200_000),
            -np.abs(rng.standard_cauchy(size=100_000)),
            np.ldexp(rng.uniform(-1.0, 1.0, size=100_000), rng.integers(-1074, 11, size=100_000)),
        ]
    )


def test_exp_in_kernels_is_glibcs_exp_bit_for_bit():
    """In jitted code (vectorised loop) ``exp`` returns libm's bits on glibc x86-64 with FMA
    (the machines whose results are committed); elsewhere it is within 1 ulp of libm.
    """
    x = _arguments(0)
    ours, libm = np.empty_like(x), np.empty_like(x)
    _exp_loop(x, ours)
    _libm_loop(x, libm)
    assert np.array_equal(np.isnan(ours), np.isnan(libm))
    finite = ~np.isnan(ours)
    if _glibc_with_fma():
        assert np.array_equal(ours[finite].view(np.int64), libm[finite].view(np.int64))
    else:  # pragma: no cover - another libm: same function, rounded its own way
        np.testing.assert_array_max_ulp(ours[finite], libm[finite], maxulp=1)


def test_exp_on_arrays_is_numpys():
    """On NumPy values (the reference engine) ``exp`` is ``np.exp``."""
    x = _arguments(1)
    with np.errstate(over="ignore"):
        assert np.array_equal(exp(x), np.exp(x), equal_nan=True)
    assert exp(0.5) == np.exp(0.5)


def test_exp_moderate_is_exp_below_512():
    """``exp_moderate`` (no special-case work) gives ``exp``'s bits for ``|x| < 512`` and NaN."""
    x = _arguments(2)
    x = np.concatenate([x[np.abs(x) < 512.0], [np.nan, 511.999, -511.999]])
    ours, moderate = np.empty_like(x), np.empty_like(x)
    _exp_loop(x, ours)
    _moderate_loop(x, moderate)
    assert np.array_equal(ours, moderate, equal_nan=True)
    assert np.array_equal(exp_moderate(x), np.exp(x), equal_nan=True)
