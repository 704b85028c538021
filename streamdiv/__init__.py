"""streamdiv: entropy, cross-entropy, KL and calibration over Arrow/Parquet prediction streams.

For a reference distribution P and a prediction Q: H(P,Q) = -sum P log Q, H(P) = -sum P log P and
KL(P||Q) = H(P,Q) - H(P) >= 0, accumulated in one pass, in bounded memory, with mergeable state.
"""

from __future__ import annotations

from .accumulator import Accumulator
from .evaluate import StreamdivWarning, evaluate
from .errors import (IncompatibleStateError, InvalidRowError, SchemaError, SourceError, StreamdivError)
from .metrics import METRIC_NAMES, METRICS
from .report import Report

__version__ = "0.1.0"

__all__ = [
    "evaluate", "Accumulator", "Report", "StreamdivWarning", "METRICS", "METRIC_NAMES", "StreamdivError", "SourceError", "SchemaError",
    "InvalidRowError", "IncompatibleStateError", "__version__",
]
