"""What a source can be: paths, or data the caller already holds (DataFrames, Arrow data).

:func:`input_kind` names the kind of a source without importing any library the caller has not
imported already (a polars frame can only exist if polars is loaded), and refuses anything else
with a :class:`~l1stream.errors.UsageError` that lists what is accepted.
"""

from __future__ import annotations

import os
import sys

from l1stream.errors import UsageError

ACCEPTED = ("a path, glob or URL (str or os.PathLike), or a list of them",
            "a pandas DataFrame", "a Dask DataFrame", "a polars DataFrame or LazyFrame",
            "a pyarrow Table, RecordBatch or RecordBatchReader", "a pyarrow.dataset.Dataset")

IN_MEMORY = ("pandas", "dask", "polars", "polars-lazy", "arrow-table", "arrow-batch", "arrow-reader",
             "arrow-dataset")


def input_kind(source) -> str:
    """``"paths"`` or one of :data:`IN_MEMORY`; raise :class:`UsageError` for anything else.

    A pyarrow dataset of Parquet files on a filesystem is ``"arrow-files"``: its files are read
    as Parquet paths (statistics, the C reader, a cluster), not through pyarrow's scanner.

    Examples
    --------
    >>> input_kind("logs/"), input_kind(["a.parquet", "b.parquet"])
    ('paths', 'paths')
    >>> try:
    ...     input_kind({"actual": [1.0]})
    ... except UsageError as exc:
    ...     print(str(exc)[:40], "...", str(exc)[-66:])
    a dict is not a source l1stream can read ... (columns in a dict: pass pyarrow.table(d) or pandas.DataFrame(d))
    """
    if isinstance(source, (str, os.PathLike)):
        return "paths"
    module = type(source).__module__.split(".")[0]
    name = type(source).__name__
    if module == "polars" and name in ("DataFrame", "LazyFrame"):
        return "polars" if name == "DataFrame" else "polars-lazy"
    kind = _arrow_kind(source)
    if kind is not None:
        return kind
    if hasattr(source, "columns") and hasattr(source, "npartitions") and hasattr(source, "to_delayed"):
        return "dask"
    if module == "pandas" and hasattr(source, "iloc") and hasattr(source, "columns"):
        return "pandas"
    if isinstance(source, (list, tuple)) and all(isinstance(s, (str, os.PathLike)) for s in source):
        return "paths"
    raise UsageError(_refusal(source))


def _arrow_kind(source) -> str | None:
    pa = sys.modules.get("pyarrow")
    if pa is None:
        return None
    if isinstance(source, pa.Table):
        return "arrow-table"
    if isinstance(source, pa.RecordBatch):
        return "arrow-batch"
    if isinstance(source, pa.RecordBatchReader):
        return "arrow-reader"
    ds = sys.modules.get("pyarrow.dataset")
    if ds is not None and isinstance(source, ds.Dataset):
        return "arrow-files" if _plain_parquet_files(source, ds) else "arrow-dataset"
    return None


def _plain_parquet_files(dataset, ds) -> bool:
    """True when reading a dataset's files as Parquet paths gives exactly the dataset's rows: Parquet
    files, no filter set on the dataset, and partition columns (if any) in hive directory names,
    which discovery reads the same way.  Anything else is read through pyarrow's scanner."""
    if not isinstance(dataset, ds.FileSystemDataset) or not isinstance(dataset.format, ds.ParquetFileFormat):
        return False
    if (getattr(dataset, "_scan_options", None) or {}).get("filter") is not None:
        return False
    partitioning = dataset.partitioning
    return partitioning is None or len(partitioning.schema) == 0 or isinstance(partitioning, ds.HivePartitioning)


def _refusal(source) -> str:
    what = _a(_type_name(source))
    hint = ""
    if hasattr(source, "__array__") or hasattr(source, "__len__") and not hasattr(source, "keys") \
            and not isinstance(source, (list, tuple)):
        hint = " (arrays of values: l1stream.mean_absolute_error(y_true, y_pred) or l1stream.MeanAbsoluteError)"
    if isinstance(source, dict):
        hint = " (columns in a dict: pass pyarrow.table(d) or pandas.DataFrame(d))"
    elif isinstance(source, (list, tuple)):
        bad = [s for s in source if not isinstance(s, (str, os.PathLike))]
        what = f"a list holding {_a(_type_name(bad[0]))}"
        hint = " (a list is of paths only; evaluate in-memory data one object at a time)"
    return f"{what} is not a source l1stream can read; it reads {'; '.join(ACCEPTED)}{hint}"


def _type_name(value) -> str:
    module = type(value).__module__.split(".")[0]
    name = type(value).__name__
    return name if module == "builtins" else f"{module}.{name}"


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
