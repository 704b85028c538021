"""Four compensated sums stepped at once: a float64 vector of four lanes, and Neumaier's step on it.

A row of the full pass adds a term to several running (sum, compensation) pairs.  Each step is about ten
scalar operations, and LLVM does not pack independent scalar chains into vector instructions, so five pairs
take five times one pair (4.2 ns a row for four, on one core).  ``Lanes4`` is an LLVM ``<4 x double>`` that a
loop carries in one register; :func:`neumaier4` is :func:`primitives._neumaier` on each lane, written in the
same IEEE operations (``fadd``, ``fsub``, ``fabs``, an ordered ``>=``, a select), none of them fast-math, so
every lane holds exactly the bits its scalar chain would (tests/test_lanes.py, including the branch taken
when the term is the larger).  Four pairs then cost 1.3-1.6 ns a row (a /tmp probe, 2,048 rows x 2,000).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.datamodel import PrimitiveModel
from numba.extending import intrinsic, register_model

_VECTOR = ir.VectorType(ir.DoubleType(), 4)


class Lanes4Type(types.Type):
    """Four float64 lanes in one LLVM vector register."""

    def __init__(self) -> None:
        super().__init__(name="Lanes4")


lanes4 = Lanes4Type()


@register_model(Lanes4Type)
class _Lanes4Model(PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


@intrinsic
def pack4(typingctx, a, b, c, d):
    """The four values (each converted to float64) as one Lanes4."""
    def codegen(context, builder, signature, args):
        vector = ir.Constant(_VECTOR, ir.Undefined)
        for i, (value, kind) in enumerate(zip(args, signature.args)):
            value = context.cast(builder, value, kind, types.float64)
            vector = builder.insert_element(vector, value, ir.Constant(ir.IntType(32), i))
        return vector
    return lanes4(a, b, c, d), codegen


@intrinsic
def lane(typingctx, vector, index):
    """Lane ``index`` (0-3) of a Lanes4."""
    def codegen(context, builder, signature, args):
        return builder.extract_element(args[0], args[1])
    return types.float64(vector, index), codegen


@intrinsic
def neumaier4(typingctx, totals, compensations, terms):
    """One Neumaier step on each lane: t = s + x; c += (s - t) + x if |s| >= |x| else (x - t) + s; s = t.
    Returns (totals, compensations)."""
    def codegen(context, builder, signature, args):
        total, compensation, term = args
        fabs = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VECTOR, [_VECTOR]),
                                              "llvm.fabs.v4f64")
        result = builder.fadd(total, term)
        larger = builder.fcmp_ordered(">=", builder.call(fabs, [total]), builder.call(fabs, [term]))
        if_larger = builder.fadd(builder.fsub(total, result), term)
        otherwise = builder.fadd(builder.fsub(term, result), total)
        compensation = builder.fadd(compensation, builder.select(larger, if_larger, otherwise))
        return context.make_tuple(builder, signature.return_type, [result, compensation])
    return types.UniTuple(lanes4, 2)(totals, compensations, terms), codegen
