"""Exceptions raised by l1stream, each with the CLI exit code it maps to.

Every error says what was expected, what arrived, and where (file, column,
row group, config key).  The CLI turns them into a one-line message (or a JSON
object with ``--json``) and the exit code below; nothing else is caught.

====  ==========================================================
code  meaning
====  ==========================================================
0     success
1     unexpected internal error (a bug: please report it)
2     usage or configuration error (bad option, config key, filter)
3     data error (bad file, missing column, NaN under ``raise``, no rows)
4     a quality gate failed
5     finished, but files were skipped and ``--allow-skipped`` was not given
6     the Dask cluster could not be started or reached
7     an output could not be written (disk full, read-only or missing
      directory, permissions, missing bucket); previous outputs are intact
====  ==========================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_GATE = 4
EXIT_SKIPPED = 5
EXIT_CLUSTER = 6
EXIT_OUTPUT = 7


def first_line(exc: BaseException, default: str | None = None) -> str:
    """The first line of an exception's message, for a one-line error (``default``, else the
    exception's type name, when it has none).

    >>> first_line(ValueError("bad header\\nat byte 4"))
    'bad header'
    >>> first_line(OSError())
    'OSError'
    """
    text = str(exc).strip()
    if text:
        return text.splitlines()[0]
    return type(exc).__name__ if default is None else default


def did_you_mean(name, choices) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to a mistyped ``name``, else ``""``.

    >>> did_you_mean("actul", ["actual", "prediction"])
    " (did you mean 'actual'?)"
    >>> did_you_mean("zzz", ["actual"])
    ''
    """
    import difflib

    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(name), choices, n=1) or [
        c for c in choices if c.lower() == str(name).lower()][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


class L1StreamError(Exception):
    """Base class: a message, an optional location (``path``) and an exit code."""

    exit_code = EXIT_INTERNAL
    kind = "error"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def to_dict(self) -> dict:
        """The JSON form used by ``--json``: ``{"type", "message", "path"}``."""
        return {"type": self.kind, "message": self.message, "path": self.path}


class UsageError(L1StreamError, ValueError):
    """A bad argument or option value (caught before any work is scheduled)."""

    exit_code = EXIT_USAGE
    kind = "usage_error"


class ConfigError(UsageError):
    """A config file that does not parse or validate; ``path`` is the key path."""

    kind = "config_error"


class DataError(L1StreamError, ValueError):
    """Input data that cannot be evaluated as asked."""

    exit_code = EXIT_DATA
    kind = "data_error"


class SourceError(DataError):
    """A path that does not exist, a glob with no match, an unreadable directory."""

    kind = "source_error"


class BadFileError(DataError):
    """A file that is not readable Parquet (truncated, empty, foreign, no permission).

    Give either a whole ``message``, or the ``problem`` (what is wrong with the file, without its
    path) and the ``remedy``: the message is then ``"PATH: PROBLEM; REMEDY, or pass
    on_bad_file='skip' ..."``, and :attr:`problem` is what a skipped file's line says.

    >>> BadFileError(path="a.csv", problem="a CSV file", remedy="convert it").message
    "a.csv: a CSV file; convert it, or pass on_bad_file='skip' to leave it out and report it"
    """

    kind = "bad_file"

    def __init__(self, message: str | None = None, *, path: str | None = None, problem: str | None = None,
                 remedy: str | None = None) -> None:
        if message is None:
            remedy = f"{remedy}, or pass" if remedy else "pass"
            message = f"{path}: {problem}; {remedy} on_bad_file='skip' to leave it out and report it"
        super().__init__(message, path=path)
        self.problem = problem or message


class SchemaError(DataError):
    """A missing column or a column whose type cannot be evaluated."""

    kind = "schema_error"


class NonFiniteError(DataError):
    """NaN, null or infinite values under ``nan_policy='raise'``, or bad weights."""

    kind = "non_finite"


class NoRowsError(DataError):
    """Nothing left to average: no rows, every row filtered or left out, or zero weight."""

    kind = "no_rows"


class SkippedFilesError(L1StreamError):
    """Files were skipped under ``on_bad_file='skip'`` and that was not allowed."""

    exit_code = EXIT_SKIPPED
    kind = "skipped_files"


class GateFailedError(L1StreamError):
    """A quality gate failed (exit code 4): ``checks`` are the failed gates, ``result`` the run's
    :class:`~l1stream.engine.result.EvaluationResult` (its outputs were written, the run recorded)."""

    exit_code = EXIT_GATE
    kind = "gate_failed"

    def __init__(self, checks: list, result=None) -> None:
        super().__init__("quality gate failed: " + "; ".join(describe_gate(c) for c in checks))
        self.checks, self.result = list(checks), result


def describe_gate(check: dict) -> str:
    """One line about a gate check.

    Examples
    --------
    >>> describe_gate({"gate": "max_mae", "slice": {"model": "v2"}, "value": 2.5, "threshold": 2.0,
    ...                "baseline": None, "status": "failed"})
    'max_mae for slice {"model": "v2"}: MAE 2.5, threshold 2.0'
    """
    import json

    where = f" for slice {json.dumps(check['slice'])}" if check["slice"] else ""
    base = f" (baseline {check['baseline']!r})" if check["baseline"] is not None else ""
    return f"{check['gate']}{where}: MAE {check['value']!r}{base}, threshold {check['threshold']!r}"


class ClusterError(L1StreamError):
    """A cluster that could not be started or reached (scheduler address, SLURM, Kubernetes, ...)."""

    exit_code = EXIT_CLUSTER
    kind = "cluster_error"


class OutputError(L1StreamError):
    """An output (JSON, report, loss dataset, store entry, history record) could not be written:
    the message names the path and the cause; nothing half-written is left behind."""

    exit_code = EXIT_OUTPUT
    kind = "output_error"
