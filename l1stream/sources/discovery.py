"""Find the Parquet files behind a source: paths, directories, globs, URLs.

Paths go through fsspec (``url_to_fs``), so ``s3://``, ``gs://``, ``abfs://``
and ``file://`` work with their ``storage_options``; nothing here splits URLs.

Ignored, as Spark and Hive do (documented in the README): any file or directory
below a source root whose name starts with ``_`` or ``.`` (``_SUCCESS``,
``_common_metadata``, ``_metadata``, ``_temporary/``, ``.part-0.parquet.crc``,
``.part-1.tmp``), and names ending in ``.crc`` or ``.tmp``.  Everything else is
taken as Parquet: a stray CSV is an error (or skipped with ``on_bad_file='skip'``),
never silently dropped.

Hive-style ``key=value`` directories below a root become typed partition keys:
``int`` when every value is an integer, ``date`` when every value is
``YYYY-MM-DD``, else ``string``.  ``__HIVE_DEFAULT_PARTITION__`` is null.
"""

from __future__ import annotations

import os
import posixpath
import re
import time
from dataclasses import dataclass, field
from typing import Any

from l1stream.errors import L1StreamError, SourceError, UsageError, first_line
from l1stream.sources.hive import hive_pair, infer_partition_types, is_ignored_name, typed_value
from l1stream.sources.inputs import input_kind
from l1stream.sources.pruned_listing import Pruned, prunable_filters, pruned_listing
from l1stream.sources.source_file import SourceFile
from l1stream.sources.tables import (
    ancestors,
    catalog_snapshot,
    enclosing_table,
    probe_tables,
    probe_tables_here,
    snapshot,
    table_kind,
)
from l1stream.storage import as_fsspec, is_local

_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass
class Discovery:
    """What :func:`discover` found."""

    filesystem: Any
    files: list
    partition_types: dict = field(default_factory=dict)  # key -> "int" | "date" | "string"
    duplicates: list = field(default_factory=list)
    ignored: list = field(default_factory=list)
    tables: list = field(default_factory=list)  # TableSnapshot of each Delta / Iceberg source
    pruned: Pruned = field(default_factory=Pruned)  # directories the partition filters kept from listing

    def source_summary(self) -> dict:
        """The JSON ``source`` object: format, and for tables the version read of each."""
        tables = [{"format": t.format, "root": t.root, "table_version": t.version} for t in self.tables]
        formats = {t["format"] for t in tables} | ({"parquet"} if len(self.tables) == 0 else set())
        versions = {t["table_version"] for t in tables}
        return {"format": formats.pop() if len(formats) == 1 else "mixed",
                "table_version": versions.pop() if len(versions) == 1 else None, "tables": tables}

    def partition_values(self, file: SourceFile) -> dict:
        """Typed partition values of ``file`` (missing keys are None)."""
        raw = dict(file.partition)
        return {k: typed_value(raw.get(k), t) for k, t in self.partition_types.items()}

    def raw_partition_values(self, key: str) -> set:
        """Every value of partition key ``key`` as written in the directory names (listed or not)."""
        return {value for f in self.files for k, value in f.partition if k == key} | self.pruned.values.get(key, set())


def discover(sources, *, storage_options: dict | None = None, filesystem=None, source_format: str = "auto",
             table_version: int | None = None, catalog: dict | None = None, partition_filters=None) -> Discovery:
    """List the data files of one or more sources, deduplicated, in a stable order.

    Parameters
    ----------
    sources : str, os.PathLike or list of them
        Files, directories (walked recursively), globs, or fsspec URLs.
    storage_options : dict, optional
        Passed to fsspec for URLs (``{"endpoint_url": ...}`` for S3, ...).
    filesystem : fsspec.AbstractFileSystem, optional
        Use this filesystem instead of inferring one from the URLs.
    source_format : {"auto", "parquet", "delta", "iceberg"}, default "auto"
        ``auto`` reads a directory holding ``_delta_log/`` as a Delta table and one holding
        ``metadata/*.metadata.json`` as an Iceberg table (their live files only), and refuses a path
        inside a table; ``parquet`` reads every path as plain Parquet files.
    table_version : int, optional
        The Delta version or Iceberg snapshot id to read (default: the current one).
    catalog : dict, optional
        An Iceberg catalog's properties (pyiceberg's ``type``, ``uri``, ``warehouse``, ... and
        optionally ``name``): the sources are then table identifiers (``namespace.table``).
    partition_filters : list, optional
        The job's parsed filters: on object storage, a directory ``key=value`` whose value they
        cannot match is not listed (:mod:`l1stream.sources.pruned_listing`).

    Raises
    ------
    SourceError
        A path that does not exist, a glob that matches nothing, or no data file at all.
    """
    kind = input_kind(sources)
    if kind != "paths":
        raise UsageError(f"this reads Parquet files and tables by path, and got in-memory data ({kind}); "
                         f"l1stream.evaluate reads in-memory data")
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = [os.fspath(s) for s in sources]
    if not sources:
        raise UsageError("no source given: pass at least one file, directory, glob or URL")
    fs = as_fsspec(filesystem)
    found: dict[str, SourceFile] = {}
    duplicates: list = []
    ignored: list = []
    links: list = []
    resolve = len(sources) > 1  # one plain source cannot reach a file twice, unless through a link
    tables: list = []
    pruned = Pruned()
    prune = prunable_filters(partition_filters)
    for source in sources:
        started = time.monotonic()
        try:
            fs = _discover_one(source, fs, storage_options, source_format, table_version, tables, found, duplicates,
                               ignored, links, resolve, catalog, (prune, pruned))
        except (L1StreamError, PermissionError):
            raise
        except Exception as exc:
            if not _is_storage_fault(exc):
                raise
            raise _storage_error(source, exc, time.monotonic() - started, storage_options) from None
        resolve = resolve or bool(links)
    if table_version is not None and not tables:
        raise UsageError(f"table_version={table_version} was given, but no source is a Delta or Iceberg table")
    if source_format == "auto":
        _refuse_tables_inside(ignored, found.values(), sources)
    types = infer_partition_types(found.values(), pruned.values)
    if pruned.directories and (not found or any(types.get(key) != kind for key, kind in pruned.types.items())):
        # the filters keep nothing (the planner says so), or a key is typed otherwise over all sources
        return discover(sources, storage_options=storage_options, filesystem=filesystem,
                        source_format=source_format, table_version=table_version, catalog=catalog)
    if not found and tables:
        found_nothing = ", ".join(f"{t.format} table {t.root!r} (version {t.version})" for t in tables)
        raise SourceError(f"no live data files in {found_nothing}", path=sources[0])
    if not found:
        hint = f" ({len(ignored)} hidden or temporary file(s) ignored)" if ignored else ""
        raise SourceError(f"no data files found in {', '.join(map(repr, sources))}{hint}", path=sources[0])
    files = sorted(found.values(), key=lambda f: f.path)
    for table in tables:  # a table's schema says what its partition keys are, not their values
        types.update(table.partition_types or {})
    return Discovery(fs, files, types, sorted(set(duplicates)), ignored, tables, pruned)


def _discover_one(source, fs, storage_options, source_format, table_version, tables, found, duplicates, ignored,
                  links, resolve, catalog=None, pruning=({}, None)):
    """Add one source's files to ``found`` (see :func:`discover`); returns the filesystem."""
    if catalog is not None:
        source_fs, table = catalog_snapshot(source, catalog, table_version, storage_options)
        tables.append(table)
        fs = fs or source_fs
        for file in table.files:
            if file.path in found:
                duplicates.append(file.path)
            else:
                found[file.path] = file
        return fs
    source_fs, path = _resolve(source, fs, storage_options)
    if fs is None:
        fs = source_fs
    elif _protocol(source_fs) != _protocol(fs):
        raise UsageError(f"all sources must be on one filesystem; {source!r} is on {_protocol(source_fs)!r}, "
                         f"earlier ones on {_protocol(fs)!r}")
    kind = _table_kind(fs, path, source, source_format)
    if kind is not None:
        if probe_tables_here(fs):
            # the table's top level, listed once: s3fs then knows its files' sizes and versions
            # (reading one or asking whether it exists is a HEAD each otherwise)
            fs.ls(path)
        table = snapshot(kind, fs, path, source, table_version, storage_options)
        tables.append(table)
        expanded = table.files
    else:
        expanded = _expand(fs, path, source, ignored, links, pruning)
    for file in expanded:
        if links and not resolve:  # the first link: from now on, files are told apart by real path
            resolve = True
            renamed = {_real_path(fs, f.path): f for f in found.values()}
            found.clear()
            found.update(renamed)
        identity = _real_path(fs, file.path) if resolve else file.path
        if identity in found:
            duplicates.append(file.path)
        else:
            found[identity] = file
    return fs


def _is_storage_fault(exc: Exception) -> bool:
    """A connection or service error from object storage (botocore, aiohttp, gcsfs, adlfs, ...)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    module = type(exc).__module__ or ""
    return module.split(".")[0] in {"botocore", "aiobotocore", "aiohttp", "google", "azure", "requests", "urllib3"}


def _storage_error(source: str, exc: Exception, elapsed: float, storage_options) -> SourceError:
    endpoint = (storage_options or {}).get("endpoint_url") or \
        ((storage_options or {}).get("client_kwargs") or {}).get("endpoint_url")
    where = f" at {endpoint}" if endpoint else ""
    hint = ("check --storage-option endpoint_url (storage_options in Python or a config) and the network"
            if endpoint else "check the credentials, the bucket name and the network")
    return SourceError(f"{source!r}: the object store{where} failed after {elapsed:.1f} s ({type(exc).__name__}: "
                       f"{first_line(exc)}); {hint}", path=source)


def _table_kind(fs, path: str, source: str, source_format: str) -> str | None:
    """The table format of a source, refusing a path inside a table (see :func:`discover`)."""
    if source_format == "parquet" or _GLOB_CHARS.search(path):
        return None
    above = ancestors(path)
    kinds = probe_tables(fs, [path, *above])  # all at once where the store allows, else one by one
    kind = kinds[path.rstrip("/")] if kinds is not None else table_kind(fs, path)
    if source_format in ("delta", "iceberg"):
        if kind != source_format:
            raise SourceError(f"{source!r} is not a {source_format} table (found no "
                              f"{'_delta_log/' if source_format == 'delta' else 'metadata/*.metadata.json'})",
                              path=source)
        return kind
    if kind is None:
        inside = enclosing_table(fs, path) if kinds is None else next(
            ((kinds[parent], parent) for parent in above if kinds[parent]), None)
        if inside is not None:
            table_format, root = inside
            raise SourceError(f"{source!r} is inside the {table_format} table {root!r}: its directories keep files "
                              f"the table no longer holds, so read the table itself and filter to that partition "
                              f"(e.g. l1stream mae {root} --filter 'KEY==VALUE'), or pass --format parquet to "
                              f"read these files as plain Parquet anyway", path=source)
    return kind


def _refuse_tables_inside(ignored: list, files, sources) -> None:
    """A plain directory that holds a table below it: never read that table's files as a pile."""
    for path in list(ignored) + [f.path for f in files]:
        for marker, kind in (("/_delta_log/", "Delta"), ("/metadata/", "Iceberg")):
            if marker in path and (kind == "Delta" or path.endswith(".metadata.json")):
                root = path.split(marker)[0]
                raise SourceError(f"{root!r} (under {', '.join(map(repr, sources))}) is a {kind} table: pass it as a "
                                  f"source of its own so that only its live files are read, or pass --format parquet "
                                  f"to read every file as plain Parquet", path=root)


def _resolve(source: str, fs, storage_options):
    if fs is not None:
        return fs, fs._strip_protocol(source)
    from l1stream.storage import url_filesystem

    return url_filesystem(source, storage_options)


def _real_path(fs, path: str) -> str:
    """The path that identifies a file: symbolic links resolved on local disks."""
    return os.path.realpath(path) if is_local(fs) else path


def _protocol(fs) -> str:
    protocol = fs.protocol
    return protocol[0] if isinstance(protocol, (tuple, list)) else protocol


def _expand(fs, path: str, source: str, ignored: list, links: list, pruning=({}, None)):
    try:
        if _GLOB_CHARS.search(path):
            root = _glob_root(path)
            matches = sorted(fs.glob(path))
            if not matches:
                raise SourceError(f"glob {source!r} matched no files", path=source)
            for match in matches:
                yield from _walk(fs, match, root, ignored, links)
            return
        if probe_tables_here(fs):  # one recursive listing, which says as well whether the path exists
            root = path.rstrip("/")
            filters, pruned = pruning
            kept = pruned_listing(fs, root, filters) if filters else None
            if kept is not None:
                listing, left_out = kept
                pruned.add(left_out)
            else:
                listing = fs.find(root, detail=True, withdirs=False)
            listing = {name: info for name, info in listing.items() if name.startswith(root + "/")}
            if listing:
                files = list(_walk(fs, root, root, ignored, links, listing=listing))
                _check_holds_parquet(fs, files, source)
                yield from files
                return
        if not fs.exists(path):
            raise SourceError(f"path does not exist: {source!r}", path=source)
        if not fs.isdir(path):
            yield from _walk(fs, path, posixpath.dirname(path), ignored, links)
            return
        files = list(_walk(fs, path, path, ignored, links))
        _check_holds_parquet(fs, files, source)
        yield from files
    except PermissionError as exc:
        raise SourceError(f"permission denied while listing {source!r}: {exc}", path=source) from exc


PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
_SNIFFED = 3  # files read to tell whether a directory without .parquet names holds Parquet at all


def _check_holds_parquet(fs, files: list, source: str) -> None:
    """Refuse a directory whose files are not Parquet: none named ``*.parquet`` (or ``.parq``, ``.pq``)
    and none of the first few ending in Parquet's magic bytes (Hive's ``000000_0`` files have no
    suffix and pass).  An empty directory is left to the caller's "no files" error."""
    if not files or any(f.path.endswith(PARQUET_SUFFIXES) for f in files):
        return
    sample = [f for f in files if f.size >= 12][:_SNIFFED]
    looks = None
    for file in sample:
        try:
            with fs.open(file.path, "rb") as handle:
                head = handle.read(4096)
                handle.seek(max(0, file.size - 4))
                if handle.read(4) == b"PAR1":
                    return
        except (OSError, ValueError):
            return  # cannot tell: the scan names the file
        from l1stream.parquet.footer import describe_foreign

        looks = looks or describe_foreign(head)
    names = ", ".join(posixpath.basename(f.path) for f in files[:3]) + (", ..." if len(files) > 3 else "")
    seen = f" ({names}; {posixpath.basename(sample[0].path)} looks like {looks})" if looks else f" ({names})"
    raise SourceError(f"no Parquet files under {source!r}: it holds {len(files):,} file(s){seen}. l1stream reads "
                      f"Parquet files and Delta and Iceberg tables; point it at those, or convert the files to "
                      f"Parquet", path=source)


def _glob_root(path: str) -> str:
    parts = path.split("/")
    for i, part in enumerate(parts):
        if _GLOB_CHARS.search(part):
            return "/".join(parts[:i])
    return posixpath.dirname(path)


def _walk(fs, path: str, root: str, ignored: list, links: list, seen: frozenset = frozenset(),
          listing: dict | None = None):
    """The files under ``path`` (or ``path`` itself), from ``listing`` when the caller made it."""
    if listing is None:
        info = fs.info(path)
        if info["type"] == "directory":
            seen = seen | {path.rstrip("/"), (info.get("destination") or path).rstrip("/")}
            listing = _local_find(path) if is_local(fs) else fs.find(path, detail=True, withdirs=False)
        else:
            listing = {path: info}
    entries = sorted(listing.items())
    for file_path, detail in entries:
        if detail.get("type") not in ("file", None):
            # a symbolic link (fsspec's local find does not follow them): follow it once
            links.append(file_path)
            try:
                detail = fs.info(file_path)
            except FileNotFoundError:  # a dangling link: the scan reports it (or skips it, under skip)
                relative = _relative(file_path, root)
                if not any(is_ignored_name(p) for p in relative.split("/")):
                    partition = tuple(hive_pair(p) for p in relative.split("/")[:-1] if "=" in p)
                    yield SourceFile(file_path, 0, partition, "dangling-link")
                continue
            if detail["type"] == "directory":
                target = (detail.get("destination") or file_path).rstrip("/")
                if target in seen or len(seen) > 80:
                    continue  # a link cycle
                if not any(is_ignored_name(p) for p in _relative(file_path, root).split("/")):
                    yield from _walk(fs, file_path, root, ignored, links, seen | {target})
                continue
        relative = _relative(file_path, root)
        parts = relative.split("/")
        if any(is_ignored_name(p) for p in parts):
            ignored.append(file_path)
            continue
        partition = tuple(hive_pair(p) for p in parts[:-1] if "=" in p)
        yield SourceFile(file_path, int(detail.get("size") or 0), partition, file_version(detail))


def _local_find(path: str) -> dict:
    """``fs.find(path, detail=True, withdirs=False)`` of fsspec's local filesystem, by ``os.scandir``:
    the same entries and details (symbolic links as type ``other``, not followed), 5-10x faster.
    Unlike fsspec's, an unreadable directory raises instead of being left out."""
    found = {}
    pending = [path.rstrip("/") or "/"]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                try:
                    own = entry.stat(follow_symlinks=False)
                    link = entry.is_symlink()
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                        continue
                    kind = "file" if entry.is_file(follow_symlinks=False) else "other"
                    size = own.st_size
                    if link:
                        try:
                            size = entry.stat(follow_symlinks=True).st_size
                        except OSError:
                            size = 0
                except FileNotFoundError:  # removed while listing
                    continue
                detail = {"name": entry.path, "size": size, "type": kind,
                          "created": getattr(own, "st_birthtime", own.st_ctime), "islink": link, "mode": own.st_mode,
                          "uid": own.st_uid, "gid": own.st_gid, "mtime": own.st_mtime, "ino": own.st_ino,
                          "nlink": own.st_nlink}
                if link:
                    detail["destination"] = os.readlink(entry.path)
                found[entry.path] = detail
    return found


_VERSION_FIELDS = ("ETag", "etag", "generation", "md5Hash", "crc32c", "VersionId", "version_id", "LastModified",
                   "last_modified", "mtime", "created", "ino")


def file_version(detail: dict) -> str:
    """A string that changes when the file is rewritten: ETag/generation on object stores,
    modification time (and inode, change time) on local disks.

    Examples
    --------
    >>> file_version({"size": 10, "ETag": '"abc"'})
    'ETag="abc"'
    """
    parts = [f"{k}={detail[k]}" for k in _VERSION_FIELDS if detail.get(k) not in (None, "")]
    return ";".join(parts)


def _relative(path: str, root: str) -> str:
    root = root.rstrip("/")
    if root and path.startswith(root + "/"):
        return path[len(root) + 1:]
    return posixpath.basename(path)


def check_outputs_outside_sources(sources, outputs: dict, storage_options: dict | None = None, *,
                                  directories: tuple = ()) -> None:
    """Refuse, before any work, an output that would write into its own input.

    ``outputs`` maps the option's name as the user wrote it (``"--output"``, ``"output.losses"``)
    to a path or URL, or ``None``.  Every output is refused when it is a source, or lies inside a
    source's directory (the next run would read it, or the write would change the input); an
    output named in ``directories`` is also refused when it contains a source (replacing the
    directory would replace the input).

    >>> check_outputs_outside_sources(["logs/"], {"--output": "results/mae.json"})
    >>> check_outputs_outside_sources(["logs/"], {"--output": "logs/losses"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    l1stream.errors.UsageError: --output logs/losses is inside the source logs/: writing there would change...
    """
    from l1stream.storage import split_url

    sources = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    roots = []
    for source in sources:
        if not isinstance(source, (str, os.PathLike)):
            continue  # a DataFrame or table: nothing on disk to protect
        key = _location(os.fspath(source), storage_options, split_url)
        if key is not None:
            roots.append((os.fspath(source), key))
    for option, target in outputs.items():
        if not target:
            continue
        where = _location(os.fspath(target), storage_options, split_url)
        if where is None:
            continue
        for source, root in roots:
            if where == root or _contains(root, where):
                raise UsageError(f"{option} {target} is inside the source {source}: writing there would change the "
                                 f"input (and the next run would read it); choose a location outside {source}")
            if option in directories and _contains(where, root):
                raise UsageError(f"{option} {target} contains the source {source}: replacing that directory would "
                                 f"replace the input; choose a directory outside {source}")


def _location(path: str, storage_options, split_url):
    """``(protocol, normalised path)`` of a path or URL; the part before any glob character."""
    try:
        fs, stripped = split_url(path, storage_options)
    except (ImportError, ValueError):
        return None
    stripped = stripped.rstrip("/")
    if _GLOB_CHARS.search(stripped):
        stripped = _glob_root(stripped)
    if is_local(fs):
        stripped = os.path.realpath(stripped)
    return _protocol(fs), stripped


def _contains(outer: tuple, inner: tuple) -> bool:
    return outer[0] == inner[0] and inner[1].startswith(outer[1].rstrip("/") + "/")
