"""l1stream: exact, out-of-core mean absolute error over partitioned Parquet.

>>> import l1stream
>>> l1stream.l1_loss([10, 11, 12, 13], [10, 12, 14, 11]).tolist()
[0.0, 1.0, 2.0, 2.0]
>>> l1stream.mean_absolute_error([10, 11, 12, 13], [10, 12, 14, 11])
1.25
"""

from l1stream._version import __version__
from l1stream.errors import (
    BadFileError,
    ClusterError,
    ConfigError,
    DataError,
    GateFailedError,
    L1StreamError,
    NonFiniteError,
    NoRowsError,
    OutputError,
    SchemaError,
    SkippedFilesError,
    SourceError,
    UsageError,
)

# Everything else loads on first use (PEP 562): ``import l1stream``, ``l1stream --version`` and
# ``-h`` pay for no numpy, pyarrow or Dask, and the report's modules wait until a report is asked for.
_LAZY = {
    "evaluate": "l1stream.engine.api", "error_quantiles": "l1stream.engine.api",
    "EvaluationResult": "l1stream.engine.result",
    "MeanAbsoluteError": "l1stream.exact.metric", "l1_loss": "l1stream.exact.metric",
    "mean_absolute_error": "l1stream.engine.arrays",
    "L1State": "l1stream.exact.state", "chunk_state": "l1stream.exact.state",
    "evaluate_report": "l1stream.report", "Report": "l1stream.report",
    "run": "l1stream.scheduled.job",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # once: later lookups skip this hook
        return value
    raise AttributeError(f"module 'l1stream' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "evaluate", "evaluate_report", "Report", "error_quantiles", "mean_absolute_error", "l1_loss",
    "MeanAbsoluteError", "EvaluationResult", "L1State",
    "chunk_state", "L1StreamError", "UsageError", "ConfigError", "DataError", "SourceError", "BadFileError",
    "SchemaError", "NonFiniteError", "NoRowsError", "SkippedFilesError", "GateFailedError", "ClusterError",
    "OutputError", "run", "__version__",
]
