"""Per-row status codes (uint8) and what each says of a row; no numba.

Codes below CODE_IGNORED are set by the columns layer before the kernels run (what the kernels cannot see:
nulls, unknown label names, lists of the wrong length); the kernels set the codes from PREDICTION_NAN on.
Each code of an invalid row is a reason a row is skipped, named by REASONS with its constant's name in lower
case (``NULL_LABEL``: ``null_label``).
"""

from __future__ import annotations

OK = 0
NULL_PREDICTION = 1
NULL_LABEL = 2
NULL_TARGET = 3
NULL_WEIGHT = 4
UNKNOWN_LABEL = 5
WRONG_LENGTH_PREDICTION = 6
WRONG_LENGTH_TARGET = 7
NULL_TIME = 8  # a windowed run's time column
# The Gaussian kind's columns, each null or of another length than the batch's first well-formed row
NULL_MEAN = 10
NULL_LOG_VARIANCE = 11
NULL_PRIOR_MEAN = 12
NULL_PRIOR_LOG_VARIANCE = 13
WRONG_LENGTH_MEAN = 14
WRONG_LENGTH_LOG_VARIANCE = 15
WRONG_LENGTH_PRIOR_MEAN = 16
WRONG_LENGTH_PRIOR_LOG_VARIANCE = 17
CODE_IGNORED = 20  # ignore_label matched: counted apart, never an error

PREDICTION_NAN = 30
PREDICTION_OUT_OF_RANGE = 31
LOGIT_NAN_OR_POSITIVE_INFINITY = 32
LOGITS_ALL_NEGATIVE_INFINITY = 33
LABEL_OUT_OF_RANGE = 34
TARGET_NAN = 35
TARGET_OUT_OF_RANGE = 36
WEIGHT_NEGATIVE_OR_NAN = 37
MEAN_NOT_FINITE = 40
LOG_VARIANCE_NOT_FINITE = 41
PRIOR_MEAN_NOT_FINITE = 42
PRIOR_LOG_VARIANCE_NOT_FINITE = 43

# For each code of an invalid row: the role whose value is at fault, and what is wrong with it.
PROBLEMS: dict[int, tuple[str, str]] = {
    NULL_PREDICTION: ("prediction", "is null"),
    NULL_LABEL: ("labels", "is null"),
    NULL_TARGET: ("targets", "is null"),
    NULL_WEIGHT: ("weights", "is null"),
    UNKNOWN_LABEL: ("labels", "is not one of the class names"),
    WRONG_LENGTH_PREDICTION: ("prediction", "does not have one value per class"),
    WRONG_LENGTH_TARGET: ("targets", "does not have one value per class"),
    NULL_TIME: ("time", "is null, so the row has no window"),
    PREDICTION_NAN: ("prediction", "holds NaN (or a null inside the list)"),
    PREDICTION_OUT_OF_RANGE: ("prediction", "holds a probability outside [0, 1]"),
    LOGIT_NAN_OR_POSITIVE_INFINITY: ("prediction", "holds a NaN or +inf logit"),
    LOGITS_ALL_NEGATIVE_INFINITY: ("prediction", "has every logit -inf"),
    LABEL_OUT_OF_RANGE: ("labels", "is not a class index in [0, number of classes)"),
    TARGET_NAN: ("targets", "holds NaN (or a null inside the list)"),
    TARGET_OUT_OF_RANGE: ("targets", "holds a probability outside [0, 1]"),
    WEIGHT_NEGATIVE_OR_NAN: ("weights", "is negative, NaN or infinite"),
    NULL_MEAN: ("mean", "is null"),
    NULL_LOG_VARIANCE: ("log_variance", "is null"),
    NULL_PRIOR_MEAN: ("prior_mean", "is null"),
    NULL_PRIOR_LOG_VARIANCE: ("prior_log_variance", "is null"),
    WRONG_LENGTH_MEAN: ("mean", "does not have one value per dimension"),
    WRONG_LENGTH_LOG_VARIANCE: ("log_variance", "does not have one value per dimension"),
    WRONG_LENGTH_PRIOR_MEAN: ("prior_mean", "does not have one value per dimension"),
    WRONG_LENGTH_PRIOR_LOG_VARIANCE: ("prior_log_variance", "does not have one value per dimension"),
    MEAN_NOT_FINITE: ("mean", "holds NaN or an infinity (or a null inside the list)"),
    LOG_VARIANCE_NOT_FINITE: ("log_variance", "holds NaN or an infinity (or a null inside the list)"),
    PRIOR_MEAN_NOT_FINITE: ("prior_mean", "holds NaN or an infinity (or a null inside the list)"),
    PRIOR_LOG_VARIANCE_NOT_FINITE: ("prior_log_variance", "holds NaN or an infinity (or a null inside the list)"),
}

# The key of each reason a row is skipped for: its code's constant name in lower case, in order of code.  The
# keys name the state's slots (``skipped.null_label``, kernels.layout) and the report's ``skipped``, so
# renaming a constant renames what saved states and JSON output call it.
REASONS: dict[int, str] = {code: name.lower() for code, name in
                           sorted((code, name) for name, code in list(globals().items())
                                  if name.isupper() and type(code) is int and code in PROBLEMS)}
assert len(REASONS) == len(PROBLEMS), "two constants share a status code"
