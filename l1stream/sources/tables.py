"""Table sources: Delta Lake and Apache Iceberg, read as one snapshot, never as a pile of files.

A table directory keeps the files of removed and rewritten data until a VACUUM or a snapshot
expiry; only the Delta log or the Iceberg metadata says which files are live.  Each function
here returns the live data files of one snapshot as :class:`~l1stream.sources.source_file.SourceFile`
entries (path, size, partition values, a version that identifies the file's bytes) plus the
snapshot's version, so the engine scans them exactly as it scans plain Parquet files.

- Delta through ``deltalake`` (delta-rs; ``pip install "l1stream[delta]"``): partition values come
  from the log (Delta data files do not hold them).  Column mapping and deletion vectors are
  refused by name (not yet applied), as is any reader feature l1stream does not know.
- Iceberg through ``pyiceberg`` (``pip install "l1stream[iceberg]"``): the data files of a
  snapshot from its manifests.  Iceberg data files hold their partition columns, so they are
  read as columns.  Position and equality delete files are refused by name (not yet applied).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from l1stream.errors import SourceError, UsageError
from l1stream.sources.source_file import SourceFile
from l1stream.storage import all_at_once, is_local, runs_async

FORMATS = ("auto", "parquet", "delta", "iceberg")
# Delta reader features that do not change which rows a file holds or how its columns are named
_HARMLESS_DELTA_FEATURES = {"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck", "typeWidening",
                            "typeWidening-preview"}


@dataclass(frozen=True)
class TableSnapshot:
    """What a table source resolved to: its format, root, version, and live files."""

    format: str
    root: str
    version: int | None
    files: list  # SourceFile
    partition_types: dict | None = None  # key -> "int" | "date" | "string", from the table's schema


def validate_format(value) -> str:
    if value is None:
        return "auto"
    if value not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}; got {value!r}")
    return value


def table_kind(fs, path: str) -> str | None:
    """``"delta"`` for a directory holding ``_delta_log/``, ``"iceberg"`` for one holding
    ``metadata/*.metadata.json`` (or a ``*.metadata.json`` file itself), else None."""
    path = path.rstrip("/")
    if path.endswith(".metadata.json"):
        return "iceberg"
    try:
        if is_local(fs):
            delta, metadata = (fs.isdir(posixpath.join(path, name)) for name in ("_delta_log", "metadata"))
        else:  # one listing request instead of one per marker (each is a round trip on object storage)
            children = ({posixpath.basename(c.rstrip("/")) for c in fs.ls(path, detail=False)}
                        if fs.isdir(path) else set())
            delta, metadata = "_delta_log" in children, "metadata" in children
        if delta:
            return "delta"
        if metadata and fs.glob(posixpath.join(path, "metadata", "*.metadata.json")):
            return "iceberg"
    except (OSError, ValueError):
        return None
    return None


def ancestors(path: str) -> list:
    """The directories above ``path``, nearest first.

    >>> ancestors("logs/daily/date=2026-11-01")
    ['logs/daily', 'logs']
    """
    path, out = path.rstrip("/"), []
    parent = posixpath.dirname(path)
    while parent and parent != path:
        out.append(parent)
        path, parent = parent, posixpath.dirname(parent)
    return out


def probe_tables_here(fs) -> bool:
    """Whether :func:`probe_tables` asks ``fs`` (S3 through s3fs: listings with a key prefix, in
    flight together) and discovery lists a source once, recursively."""
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return protocol in ("s3", "s3a") and runs_async(fs, "_find")


def probe_tables(fs, paths: list) -> dict | None:
    """``{path: "delta" | "iceberg" | None}`` for many directories at once, on S3: for each, two
    listings of what starts with ``_delta_log`` and ``metadata`` (a few keys each, not the directory's
    every entry: a bucket's top level can hold 100,000), all in flight together.  None on other
    filesystems (ask :func:`table_kind` one path at a time there)."""
    if not probe_tables_here(fs):
        return None
    names = ("_delta_log", "metadata")

    async def holds(path: str, name: str) -> bool:
        try:
            found = await fs._find(path, maxdepth=1, withdirs=True, prefix=name)
        except OSError:  # missing, or not ours to list (a policy scoped to the source): not a table, as before
            return False
        return any(p.rstrip("/") == f"{path}/{name}" for p in found)

    paths = [p.rstrip("/") for p in paths]
    for path in paths:
        fs.invalidate_cache(path)  # this job's own listings, not an earlier job's
    flags = all_at_once(fs, [holds(path, name) for path in paths for name in names])
    kinds = {}
    for i, path in enumerate(paths):
        delta, metadata = flags[2 * i], flags[2 * i + 1]
        kinds[path] = "delta" if delta else "iceberg" if metadata and fs.glob(
            posixpath.join(path, "metadata", "*.metadata.json")) else None
    return kinds


def missing_files(fs, paths: list) -> list:
    """Those of ``paths`` that do not exist: asked all at once on an asynchronous filesystem
    (object storage: one round trip, not one per file), one by one elsewhere."""
    if not runs_async(fs, "_exists"):
        return [path for path in paths if not fs.exists(path)]
    return [path for path, there in zip(paths, all_at_once(fs, [fs._exists(path) for path in paths])) if not there]


def enclosing_table(fs, path: str) -> tuple | None:
    """``(kind, root)`` when ``path`` lies inside a table (a partition directory or a data file
    under a Delta table's root, or anything under an Iceberg table's root)."""
    path = path.rstrip("/")
    parent = posixpath.dirname(path)
    while parent and parent != path:
        kind = table_kind(fs, parent)
        if kind:
            return kind, parent
        path, parent = parent, posixpath.dirname(parent)
    return None


def snapshot(kind: str, fs, path: str, source: str, version=None, storage_options=None) -> TableSnapshot:
    """The live files of table ``path`` at ``version`` (None: the current one)."""
    if kind == "delta":
        return _delta(fs, path, source, version, storage_options)
    return _iceberg(fs, path, source, version)


def _uri(fs, path: str) -> str:
    from l1stream.storage import is_local

    if is_local(fs):
        return path
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return f"{protocol}://{path}"


def _delta(fs, path: str, source: str, version, storage_options) -> TableSnapshot:
    try:
        import deltalake
    except ImportError:
        raise UsageError(f"{source!r} is a Delta Lake table (it has _delta_log/); reading it needs deltalake: "
                         f"pip install \"l1stream[delta]\"") from None
    options = _delta_storage_options(storage_options)
    try:
        table = deltalake.DeltaTable(_uri(fs, path), version=version, storage_options=options or None)
    except Exception as exc:  # delta-rs raises its own TableNotFoundError, DeltaError, ...
        at = f" at version {version}" if version is not None else ""
        raise SourceError(f"Delta table {source!r}{at} cannot be read: {exc}", path=source) from None
    protocol = table.protocol()
    features = set(protocol.reader_features or ())
    mapping = (table.metadata().configuration or {}).get("delta.columnMapping.mode", "none")
    if "columnMapping" in features or mapping not in ("none", None):
        raise SourceError(f"Delta table {source!r} uses column mapping (mode {mapping!r}): its files name columns "
                          f"by physical ids, which l1stream does not translate yet", path=source)
    actions = _add_actions(table)
    if "deletionVectors" in features and _has_deletion_vectors(actions):
        raise SourceError(f"Delta table {source!r} (version {table.version()}) has deletion vectors: rows deleted "
                          f"without rewriting files, which l1stream does not apply yet; run OPTIMIZE/PURGE "
                          f"to rewrite them, or read it with deltalake", path=source)
    unknown = features - _HARMLESS_DELTA_FEATURES - {"deletionVectors"}
    if unknown:
        raise SourceError(f"Delta table {source!r} needs reader feature(s) l1stream does not implement: "
                          f"{', '.join(sorted(unknown))}", path=source)
    keys = list(table.metadata().partition_columns)
    kinds = {f.name: getattr(f.type, "type", "") for f in table.schema().fields if f.name in keys}
    partition_types = {k: _DELTA_KINDS.get(kinds.get(k, ""), "string") for k in keys}
    files = []
    for row in actions:
        relative = row["path"]
        file_path = relative if "://" in relative or relative.startswith("/") else posixpath.join(path, relative)
        file_path = fs._strip_protocol(file_path) if "://" in file_path else file_path
        partition = tuple((k, _raw_value(row.get(f"partition.{k}"))) for k in keys)
        version_id = f"delta;mtime={row.get('modification_time')};size={row['size_bytes']}"
        files.append(SourceFile(file_path, int(row["size_bytes"]), partition, version_id))
    missing = missing_files(fs, [f.path for f in files[:50]])
    if missing:
        raise SourceError(f"Delta table {source!r} (version {table.version()}) lists data files that do not "
                          f"exist, e.g. {missing[0]!r}: the table is damaged or was vacuumed past this version",
                          path=missing[0])
    return TableSnapshot("delta", path, table.version(), sorted(files, key=lambda f: f.path), partition_types)


# Delta primitive types -> l1stream's partition key kinds (what filters compare as)
_DELTA_KINDS = {"byte": "int", "short": "int", "integer": "int", "long": "int", "date": "date"}


def _raw_value(value):
    """A partition value as hive directories write it (delta-rs hands back typed values)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _delta_storage_options(storage_options) -> dict:
    """fsspec's S3 options in delta-rs's spelling (the ones an S3-compatible endpoint needs)."""
    options = dict(storage_options or {})
    out = {}
    client = options.pop("client_kwargs", {}) or {}
    endpoint = options.pop("endpoint_url", None) or client.get("endpoint_url")
    if endpoint:
        out["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            out["AWS_ALLOW_HTTP"] = "true"
    for ours, theirs in (("key", "AWS_ACCESS_KEY_ID"), ("secret", "AWS_SECRET_ACCESS_KEY"),
                         ("token", "AWS_SESSION_TOKEN")):
        if options.get(ours):
            out[theirs] = options.pop(ours)
    region = client.get("region_name") or options.pop("region_name", None)
    if region:
        out["AWS_REGION"] = region
    out.update({k: str(v) for k, v in options.items() if k.isupper()})  # delta-rs options given as is
    return out


def _add_actions(table) -> list:
    """The table's add actions as rows (``{"path": ..., "size_bytes": ..., "partition.k": ...}``).

    deltalake 1.x hands them over as an arro3 table: its columns convert to Python values on their
    own, as pyarrow's would (tests compare the two), with no pyarrow import (0.08 s).  Otherwise
    through the Arrow stream interface; ``pa.table()`` would first ask whether the object is a
    pandas DataFrame, which imports pandas (0.25 s)."""
    actions = table.get_add_actions(flatten=True)
    names = getattr(actions, "column_names", None)
    if names is not None and all(hasattr(actions[name], "to_pylist") for name in names):
        return [dict(zip(names, values)) for values in zip(*(actions[name].to_pylist() for name in names))]
    import pyarrow as pa

    return pa.RecordBatchReader.from_stream(actions).read_all().to_pylist()


def _has_deletion_vectors(actions: list) -> bool:
    if not actions:
        return False
    columns = [c for c in actions[0] if c.startswith("deletionVector")]
    if not columns:
        return True  # the feature is on and l1stream cannot tell which files carry one: refuse
    return any(row[c] is not None for row in actions for c in columns)


def catalog_snapshot(identifier: str, catalog: dict, version=None, storage_options=None) -> tuple:
    """``(filesystem, TableSnapshot)`` of the Iceberg table ``identifier`` (``namespace.table``) in a
    catalog: ``catalog`` holds pyiceberg's catalog properties (``type``, ``uri``, ``warehouse``, ...)
    and optionally its ``name``."""
    try:
        from pyiceberg.catalog import load_catalog
    except ImportError:
        raise UsageError("reading an Iceberg table from a catalog needs pyiceberg: pip install "
                         "\"l1stream[iceberg]\"") from None
    from fsspec.core import url_to_fs

    from l1stream.storage import with_connections

    properties = {k: str(v) for k, v in catalog.items() if k != "name"}
    name = str(catalog.get("name", "default"))
    try:
        table = load_catalog(name, **properties).load_table(identifier)
    except Exception as exc:
        raise SourceError(f"Iceberg table {identifier!r} in catalog {name!r} cannot be loaded "
                          f"({type(exc).__name__}: {exc})", path=identifier) from None
    fs, root = url_to_fs(table.location(), **with_connections(table.location(), storage_options))
    return fs, _iceberg_files(table, fs, root, identifier, version)


def _iceberg(fs, path: str, source: str, version) -> TableSnapshot:
    try:
        from pyiceberg.table import StaticTable
    except ImportError:
        raise UsageError(f"{source!r} is an Apache Iceberg table (it has metadata/*.metadata.json); reading it needs "
                         f"pyiceberg: pip install \"l1stream[iceberg]\"") from None
    metadata = path if path.endswith(".metadata.json") else _latest_metadata(fs, path, source)
    root = posixpath.dirname(posixpath.dirname(metadata))
    try:
        table = StaticTable.from_metadata(_uri(fs, metadata))
    except Exception as exc:
        raise SourceError(f"Iceberg table {source!r}: metadata {metadata!r} cannot be read: {exc}",
                          path=source) from None
    return _iceberg_files(table, fs, root, source, version)


def _iceberg_files(table, fs, root: str, source: str, version) -> TableSnapshot:
    snapshot_id = version
    if snapshot_id is None:
        current = table.current_snapshot()
        if current is None:
            return TableSnapshot("iceberg", root, None, [])
        snapshot_id = current.snapshot_id
    elif table.snapshot_by_id(int(snapshot_id)) is None:
        known = ", ".join(str(s.snapshot_id) for s in table.metadata.snapshots) or "none"
        raise SourceError(f"Iceberg table {source!r} has no snapshot {snapshot_id}; snapshots: {known}", path=source)
    try:
        tasks = list(table.scan(snapshot_id=int(snapshot_id)).plan_files())
    except Exception as exc:
        raise SourceError(f"Iceberg table {source!r} (snapshot {snapshot_id}): its manifests cannot be read: {exc}",
                          path=source) from None
    files = []
    for task in tasks:
        if task.delete_files:
            raise SourceError(f"Iceberg table {source!r} (snapshot {snapshot_id}) has delete files (row-level "
                              f"deletes) for {task.file.file_path!r}, which l1stream does not apply yet; rewrite "
                              f"the table's data files (rewrite_data_files) first", path=source)
        data = task.file
        if not str(data.file_format).upper().endswith("PARQUET"):
            raise SourceError(f"Iceberg table {source!r}: data file {data.file_path!r} is {data.file_format}, not "
                              f"Parquet", path=data.file_path)
        file_path = fs._strip_protocol(data.file_path)
        files.append(SourceFile(file_path, int(data.file_size_in_bytes), (), f"iceberg;size={data.file_size_in_bytes}"))
    missing = missing_files(fs, [f.path for f in files])
    if missing:
        raise SourceError(f"Iceberg table {source!r} (snapshot {snapshot_id}) lists a data file that does not "
                          f"exist: {missing[0]!r}", path=missing[0])
    return TableSnapshot("iceberg", root, int(snapshot_id), sorted(files, key=lambda f: f.path))


def _latest_metadata(fs, path: str, source: str) -> str:
    """The newest ``metadata/*.metadata.json`` (by the version-hint file, else by version number)."""
    directory = posixpath.join(path, "metadata")
    hint = posixpath.join(directory, "version-hint.text")
    if fs.exists(hint):
        with fs.open(hint, "rb") as handle:
            number = handle.read().decode().strip()
        for candidate in (f"v{number}.metadata.json", f"{number}.metadata.json"):
            if fs.exists(posixpath.join(directory, candidate)):
                return posixpath.join(directory, candidate)
    names = sorted(fs.glob(posixpath.join(directory, "*.metadata.json")), key=_metadata_order)
    if not names:
        raise SourceError(f"Iceberg table {source!r} has no metadata/*.metadata.json", path=source)
    return names[-1]


def _metadata_order(name: str):
    """``00012-<uuid>.metadata.json`` and ``v12.metadata.json`` sort by their number."""
    base = posixpath.basename(name)
    digits = base.split("-")[0].split(".")[0].lstrip("v")
    return (int(digits) if digits.isdigit() else -1, base)
