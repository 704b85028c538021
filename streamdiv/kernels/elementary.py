"""Branch-free float64 ``log`` and ``exp`` that LLVM can vectorise (AVX2 here), within 1 ulp of libm.

numba calls libm's scalar ``log``/``exp`` (no SVML in llvmlite's LLVM), which keeps the per-class loops of
prediction entropy and log-softmax scalar: 10^8 logs take 0.35 s.  These are fdlibm's algorithms (e_log.c,
e_exp.c: the same range reduction and minimax polynomials) written without branches, with the float/int
reinterpretation done by an LLVM ``bitcast``; inside a loop whose sum may be reassociated they vectorise and
take 0.07 s for the same 10^8 logs.  tests/test_elementary.py checks them against libm over the whole range.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def float_bits(typingctx, x):
    """The IEEE-754 bits of a float64, as int64 (a reinterpretation, not a conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def bits_float(typingctx, x):
    """The float64 whose IEEE-754 bits are the given int64."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


LG1 = 6.666666666666735130e-01
LG2 = 3.999999999940941908e-01
LG3 = 2.857142874366239149e-01
LG4 = 2.222219843214978396e-01
LG5 = 1.818357216161805012e-01
LG6 = 1.531383769920937332e-01
LG7 = 1.479819860511658591e-01
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
TWO54 = 1.80143985094819840000e16
SMALLEST_NORMAL = 2.2250738585072014e-308


@njit(inline="always", error_model="numpy")
def fast_log(x):
    """log(x) for finite x > 0, within 1 ulp (fdlibm e_log.c without branches).

    x = 2^k (1 + f) with 1 + f in [sqrt(2)/2, sqrt(2)); s = f/(2+f); log(1+f) = f - f^2/2 + s(f^2/2 + R(s^2)).
    The result for x <= 0, inf or NaN is meaningless: callers select it away.
    """
    subnormal = x < SMALLEST_NORMAL
    x = x * TWO54 if subnormal else x
    bits = float_bits(x)
    high = (bits >> 32) + (0x3FF00000 - 0x3FE6A09E)  # moves the mantissa boundary to sqrt(2)/2
    k = (high >> 20) - 0x3FF - (54 if subnormal else 0)
    high = (high & 0x000FFFFF) + 0x3FE6A09E
    f = bits_float((high << 32) | (bits & 0xFFFFFFFF)) - 1.0
    half_f_squared = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7))) + w * (LG2 + w * (LG4 + w * LG6))
    dk = np.float64(k)
    return dk * LN2_HI - ((half_f_squared - (s * (half_f_squared + r) + dk * LN2_LO)) - f)


P1 = 1.66666666666666019037e-01
P2 = -2.77777777770155933842e-03
P3 = 6.61375632143793436117e-05
P4 = -1.65339022054652515390e-06
P5 = 4.13813679705723846039e-08
INV_LN2 = 1.44269504088896338700e00
EXP_UNDERFLOW = -708.3964185322641  # below this exp(x) is subnormal: flushed to 0 here


@njit(inline="always", error_model="numpy")
def fast_exp(x):
    """exp(x) for x <= 0, within 1 ulp (fdlibm e_exp.c without branches); 0 below -708.4.

    x = k ln2 + r, |r| <= ln2/2; exp(r) = 1 + r + r c/(2 - c) with c = r - r^2 P(r^2); exp(x) = 2^k exp(r).
    Flushing results under 2.2e-308 to 0 changes a softmax sum by less than 1e-308, which float64 cannot see.
    """
    k = np.floor(x * INV_LN2 + 0.5)
    hi = x - k * LN2_HI
    lo = k * LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    exponent = np.int64(k) + 1023
    exponent = exponent if exponent > 0 else 1
    scale = bits_float(exponent << 52)
    return y * scale if x >= EXP_UNDERFLOW else 0.0


@njit(inline="always", error_model="numpy")
def fast_log1p(x):
    """log(1 + x) for x > -1 within a few ulp, also for tiny x: with u = 1 + x rounded,
    log1p(x) = log(u) - ((u - 1) - x) / u (the rounding of u corrected to first order; u = 1 gives x)."""
    u = 1.0 + x
    return x if u == 1.0 else fast_log(u) - ((u - 1.0) - x) / u
