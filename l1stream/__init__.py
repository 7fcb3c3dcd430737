"""l1stream: exact, out-of-core mean absolute error over partitioned Parquet.

>>> import l1stream
>>> l1stream.l1_loss([10, 11, 12, 13], [10, 12, 14, 11]).tolist()
[0.0, 1.0, 2.0, 2.0]
>>> l1stream.mean_absolute_error([10, 11, 12, 13], [10, 12, 14, 11])
1.25
"""

from l1stream._version import __version__
from l1stream.engine.api import error_quantiles, evaluate
from l1stream.engine.result import EvaluationResult
from l1stream.errors import (
    BadFileError,
    ClusterError,
    ConfigError,
    DataError,
    L1StreamError,
    NonFiniteError,
    NoRowsError,
    SchemaError,
    SkippedFilesError,
    SourceError,
    UsageError,
)
from l1stream.exact.metric import MeanAbsoluteError, l1_loss, mean_absolute_error
from l1stream.exact.state import L1State, chunk_state


def __getattr__(name):  # the report's modules load on first use: the CLI's start-up does not pay for them
    if name in ("evaluate_report", "Report"):
        from . import report

        return getattr(report, name)
    raise AttributeError(f"module 'l1stream' has no attribute {name!r}")

__all__ = [
    "evaluate", "evaluate_report", "Report", "error_quantiles", "mean_absolute_error", "l1_loss",
    "MeanAbsoluteError", "EvaluationResult", "L1State",
    "chunk_state", "L1StreamError", "UsageError", "ConfigError", "DataError", "SourceError", "BadFileError",
    "SchemaError", "NonFiniteError", "NoRowsError", "SkippedFilesError", "ClusterError", "__version__",
]
