r"""``exp`` for the model's equations: NumPy's on arrays, a branch-free one inside the kernels.

The model's equations (:mod:`sim.model.equations`) call :func:`exp`. On NumPy arrays (the
vectorised reference calls the equations through ``.py_func``) it is ``np.exp``. Inside
numba-compiled code, on a scalar, it compiles to :func:`_exp_scalar`: the algorithm of
glibc's ``exp`` (since glibc 2.28; ARM's optimized-routines, Szabolcs Nagy), operation for
operation as glibc's x86-64 build runs it on a CPU with FMA (``__exp_fma``, the variant
glibc's ifunc picks on every x86-64 CPU since 2013), written without a branch: every special
case is computed and selected. So

* it returns the same bits as ``math.exp`` / ``np.exp`` in numba on such a machine (checked
  on 3e8 arguments across the whole double range, ``tests/model/test_model_exponential.py``),
  so switching the kernels to it moved no number;
* LLVM vectorises it (the table look-up becomes a gather, the selects blends), so a loop
  over customers runs several ``exp`` per instruction: about 0.6--1.8 ns per value in
  AVX2/AVX-512 lanes here against 4.2 ns for a call into libm, which a vectorised loop can
  only make once per lane, spilling its registers around each call;
* it is the same on every platform: the kernels' numbers no longer depend on the machine's
  ``libm`` (its maximum error is glibc's, about 0.51 ulp).

Algorithm: ``exp(x) = 2^(k/N) exp(r)`` with ``N = 128``, ``k = round(x N / ln 2)``,
``r = x - k ln2/N`` in two FMA steps (``ln2/N`` split in a high and a low part),
``2^(k/N)`` from a table of ``2^(i/N)`` (:data:`_TABLE`: the scale's bits less ``i << 45``
and the rounding error of the double, made here from exact decimal arithmetic) and a
degree-5 polynomial for ``exp(r)`` (glibc's coefficients). Arguments with ``|x| >= 512``
take glibc's ``specialcase`` (results near overflow or in the subnormal range, rounded once),
``|x| >= 1024`` gives 0 or inf, ``|x| < 2^-54`` gives ``1 + x``; NaN stays NaN.
"""

from __future__ import annotations

import struct
from decimal import Decimal, localcontext

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

__all__ = ["exp", "exp_moderate", "fused_multiply_add"]


def _table() -> np.ndarray:
    """``tab[2i + 1]`` = bits of ``2^(i/128)`` rounded to a double, less ``i << 45``;
    ``tab[2i]`` = bits of its relative rounding error ``(2^(i/128) - double) / double``.
    """
    table = np.empty(256, dtype=np.uint64)
    with localcontext() as context:
        context.prec = 60
        for i in range(128):
            exact = Decimal(2) ** (Decimal(i) / 128)
            scale = float(exact)
            table[2 * i + 1] = struct.unpack("<Q", struct.pack("<d", scale))[0] - (i << 45)
            tail = float((exact - Decimal(scale)) / Decimal(scale))
            table[2 * i] = struct.unpack("<Q", struct.pack("<d", tail))[0]
    return table


#: 2^(i/128), i = 0..127, as glibc's ``__exp_data.tab`` (frozen into the compiled code).
_TABLE = _table()
_INV_LN2_N = float.fromhex("0x1.71547652b82fep+7")  # 128 / ln 2
_NEG_LN2_HI_N = float.fromhex("-0x1.62e42fefa0000p-8")  # -ln 2 / 128, high part
_NEG_LN2_LO_N = float.fromhex("-0x1.cf79abc9e3b3ap-47")  # and low part
_C2 = float.fromhex("0x1.ffffffffffdbdp-2")
_C3 = float.fromhex("0x1.555555555543cp-3")
_C4 = float.fromhex("0x1.55555cf172b91p-5")
_C5 = float.fromhex("0x1.1111167a4d017p-7")
_SHIFT = float.fromhex("0x1.8p52")  # x N/ln2 + _SHIFT rounds to the integer k, which its low bits hold
_TWO_TO_1009 = 2.0**1009
_TWO_TO_MINUS_1022 = 2.0**-1022
_U1 = np.uint64(1)
_U45 = np.uint64(45)
_U52 = np.uint64(52)
_U127 = np.uint64(127)
_EXPONENT_MASK = np.uint64(0x7FF)
_TOP_TINY = np.uint64(0x3C9)  # top 12 bits of 2^-54
_TOP_512 = np.uint64(0x408)  # of 512
_K_SIGN = np.uint64(0x80000000)
_ZERO_BITS = np.uint64(0)
_ONE_BITS = np.uint64(0x3FF0000000000000)
_EXPONENT_1009 = np.uint64(1009 << 52)
_EXPONENT_1022 = np.uint64(1022 << 52)


@intrinsic
def fused_multiply_add(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma``: one instruction on CPUs with FMA, in vector
    lanes too). Jit-only.
    """
    signature = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, sig, args):
        return builder.fma(*args)

    return signature, codegen


@intrinsic
def _bits(typingctx, x):
    """The bits of a float64 as a uint64 (a register move; no arithmetic)."""

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(types.float64), codegen


@intrinsic
def _double(typingctx, u):
    """The float64 whose bits are the uint64 ``u``."""

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.uint64), codegen


@njit(cache=True, error_model="numpy", forceinline=True)
def _exp_core(x):
    """Glibc's main path: ``(result, tmp, scale_bits, ki)`` of ``exp(x)`` for ``|x| < 512``."""
    fma = fused_multiply_add
    # x = k ln2/N + r, |r| <= ln2/2N; 2^(k/N) = scale (1 + tail)
    kd = fma(x, _INV_LN2_N, _SHIFT)
    ki = _bits(kd)
    kd = kd - _SHIFT
    r = fma(kd, _NEG_LN2_HI_N, x)
    r = fma(kd, _NEG_LN2_LO_N, r)
    index = (ki & _U127) + (ki & _U127)
    tail = _double(_TABLE[index])
    scale_bits = _TABLE[index + _U1] + (ki << _U45)
    r2 = r * r
    tmp = fma(fma(r, _C3, _C2), r2, r + tail)
    tmp = fma(r2 * r2, fma(r, _C5, _C4), tmp)
    scale = _double(scale_bits)
    return fma(scale, tmp, scale), tmp, scale_bits, ki


@njit(cache=True, error_model="numpy", forceinline=True)
def _exp_scalar(x):
    """The FMA build of glibc's ``exp``, without branches; see the module docstring."""
    fma = fused_multiply_add
    top = (_bits(x) >> _U52) & _EXPONENT_MASK
    result, tmp, scale_bits, ki = _exp_core(x)
    # 512 <= |x| < 1024: glibc's specialcase, k > 0 (near overflow) or k < 0 (subnormal range,
    # rounded once). Lanes that do not need it compute it on 1.0 instead, so that no operand
    # here is subnormal (a subnormal operand costs a microcode assist in every lane).
    special = top == _TOP_512
    upward = (ki & _K_SIGN) == _ZERO_BITS
    tmp_special = tmp if special else 0.0
    up = _double((scale_bits if special and upward else _ONE_BITS) - _EXPONENT_1009)
    y_up = fma(up, tmp_special, up) * _TWO_TO_1009
    down = _double((scale_bits if special and not upward else _ONE_BITS) + _EXPONENT_1022)
    down_tmp = tmp_special * down
    y = down + down_tmp
    hi = y + 1.0
    lo = (down - y) + down_tmp
    y_small = ((((1.0 - hi) + y) + lo) + hi) - 1.0
    y_small = 0.0 if y_small == 0.0 else y_small
    y_down = (y_small if y < 1.0 else y) * _TWO_TO_MINUS_1022
    result = (y_up if upward else y_down) if special else result
    # |x| >= 1024, +-inf, NaN: 0 below, inf above, NaN stays NaN
    huge = 0.0 if x < 0.0 else x + np.inf
    result = huge if top > _TOP_512 else result
    # |x| < 2^-54
    return 1.0 + x if top < _TOP_TINY else result


@njit(cache=True, error_model="numpy", forceinline=True)
def _exp_moderate_scalar(x):
    """:func:`_exp_scalar` for ``|x| < 512`` or NaN: the main path alone (for ``|x| < 2^-54`` it
    gives ``1 + x`` too, and NaN stays NaN).
    """
    return _exp_core(x)[0]


def exp(x):
    """``e ** x``: ``np.exp`` on NumPy values; inside numba kernels, on a float, the
    vectorisable twin of glibc's ``exp`` (:func:`_exp_scalar`, same bits).
    """
    return np.exp(x)


@overload(exp)
def _exp_overload(x):
    if x == types.float64 or isinstance(x, types.Integer):

        def impl(x):
            return _exp_scalar(np.float64(x))

        return impl

    def impl(x):
        return np.exp(x)

    return impl


def exp_moderate(x):
    """:func:`exp` of an argument the caller keeps within ``|x| < 512`` (or NaN): the same bits,
    with none of the special cases' work in the kernels (``np.exp`` on NumPy values).
    """
    return np.exp(x)


@overload(exp_moderate)
def _exp_moderate_overload(x):
    if x == types.float64 or isinstance(x, types.Integer):

        def impl(x):
            return _exp_moderate_scalar(np.float64(x))

        return impl

    def impl(x):
        return np.exp(x)

    return impl
