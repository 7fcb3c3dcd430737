"""Storage every layer shares: whether a filesystem is local, and outputs that are never half-written.

A file is written to a temporary name in its target directory, flushed and
fsynced, then renamed over the target (atomic on POSIX).  A directory output is
built under a temporary sibling and swapped in at the end with one atomic
exchange (Linux ``renameat2(RENAME_EXCHANGE)``), so a kill at any moment leaves
either the old or the new directory at the path; where the exchange is not
available, two renames are used and a directory left aside by a kill between
them is put back by the next write.  A failure or an interruption leaves the
previous output intact and removes the temporary.  A write that fails for a
reason outside l1stream (disk full, read-only directory, permissions) raises
:class:`~l1stream.errors.OutputError` naming the path and the cause.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import uuid

from l1stream.errors import OutputError, first_line


def is_local(fs) -> bool:
    """True for fsspec's local filesystem (protocol ``file``/``local``)."""
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def as_fsspec(filesystem):
    """``filesystem`` as fsspec: a pyarrow filesystem (a dataset's, say) is wrapped, fsspec ones pass.

    Examples
    --------
    >>> import pyarrow.fs
    >>> is_local(as_fsspec(pyarrow.fs.LocalFileSystem()))
    True
    >>> as_fsspec(None) is None
    True
    """
    if filesystem is None or type(filesystem).__module__.split(".")[0] != "pyarrow":
        return filesystem
    import fsspec

    if type(filesystem).__name__ == "LocalFileSystem":
        return fsspec.filesystem("file")
    from fsspec.implementations.arrow import ArrowFSWrapper

    return ArrowFSWrapper(filesystem)


def output_error(path: str, exc: OSError) -> OutputError:
    """An :class:`OutputError` naming ``path`` and the system's cause."""
    cause = exc.strerror or type(exc).__name__
    hint = {28: "free space on that disk or write elsewhere", 30: "the file system is read-only; write elsewhere",
            13: "l1stream may not write there; check its permissions or write elsewhere"}.get(exc.errno or 0, "")
    return OutputError(f"could not write {path}: {cause}" + (f" ({hint})" if hint else ""), path=path)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux renameat2); False where that is not available."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this kernel or file system cannot
        return False
    raise OSError(errno, os.strerror(errno), b)


def _restore_set_aside(path: str) -> None:
    """Put back a directory that a kill between two renames left at ``.NAME.old-*``."""
    if os.path.exists(path):
        return
    parent, name = os.path.dirname(path), os.path.basename(path)
    with contextlib.suppress(OSError):
        for entry in sorted(os.listdir(parent)):
            if entry.startswith(f".{name}.old-"):
                os.replace(os.path.join(parent, entry), path)
                return


_abandoned: set = set()  # staging directories of failed or interrupted outputs


def abandon(staging: str) -> None:
    """Remove a staging directory now, and again at exit: worker threads still finishing a task
    when the run was interrupted may write into it after the first removal (Python joins those
    threads before it runs exit handlers, so the second removal comes after the last write)."""
    _abandoned.add(staging)
    shutil.rmtree(staging, ignore_errors=True)


@atexit.register
def _remove_abandoned() -> None:
    for staging in list(_abandoned):
        shutil.rmtree(staging, ignore_errors=True)


def staging_alive(staging: str) -> bool:
    """False once :func:`abandon` gave up this staging directory: writers stop."""
    return staging not in _abandoned


@contextlib.contextmanager
def atomic_directory(path: str):
    """Yield a temporary directory that replaces ``path`` only if the block succeeds."""
    path = os.path.abspath(path.rstrip("/"))
    parent = os.path.dirname(path)
    temporary = os.path.join(parent, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
    try:
        os.makedirs(parent, exist_ok=True)
        _restore_set_aside(path)
        os.makedirs(temporary)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        yield temporary
    except BaseException:
        abandon(temporary)
        raise
    try:
        if os.path.exists(path) and _exchange(temporary, path):
            shutil.rmtree(temporary, ignore_errors=True)  # it now holds the old content
            return
        old = None
        if os.path.exists(path):
            old = os.path.join(parent, f".{os.path.basename(path)}.old-{uuid.uuid4().hex}")
            os.replace(path, old)
        os.replace(temporary, path)
    except OSError as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        raise output_error(path, exc) from None
    if old:
        shutil.rmtree(old, ignore_errors=True)


def write_bytes(fs, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` on ``fs`` whole or not at all (rename locally, one PUT remotely)."""
    if not is_local(fs):
        try:
            fs.pipe(path, data)
        except (OSError, PermissionError) as exc:
            raise output_error(path, exc) from None
        return
    directory = os.path.dirname(path)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
    try:
        os.makedirs(directory, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(exc, OSError):
            raise output_error(path, exc) from None
        raise


#: fsspec protocol -> the l1stream extra that installs its filesystem
PROTOCOL_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "abfss": "azure",
                   "az": "azure", "adl": "azure", "http": "http", "https": "http"}


class LocalFiles:
    """fsspec's local filesystem, made on first use: ``protocol`` (for :func:`is_local`) and what a
    local discovery asks (``_strip_protocol``, ``info``, ``isdir``, ``exists``, written as fsspec's
    ``LocalFileSystem`` writes them; tests compare the two) answer without importing fsspec (about
    30 ms of a short run); any other attribute is the real ``LocalFileSystem``'s.  Pickles as
    itself (for workers)."""

    protocol = ("file", "local")

    @staticmethod
    def _strip_protocol(path) -> str:
        text = os.fspath(path)
        local = _local_posix_path(text)
        if local is None:
            from fsspec.implementations.local import LocalFileSystem

            return LocalFileSystem._strip_protocol(text)
        return local

    def info(self, path, **kwargs) -> dict:
        import stat

        path = self._strip_protocol(path)
        out = os.stat(path, follow_symlinks=False)
        link = stat.S_ISLNK(out.st_mode)
        if link:
            out = os.stat(path, follow_symlinks=True)
        kind = "directory" if stat.S_ISDIR(out.st_mode) else "file" if stat.S_ISREG(out.st_mode) else "other"
        result = {"name": path, "size": out.st_size, "type": kind,
                  "created": getattr(out, "st_birthtime", out.st_ctime), "islink": link}
        for name in ("mode", "uid", "gid", "mtime", "ino", "nlink"):
            result[name] = getattr(out, f"st_{name}")
        if link:
            result["destination"] = os.readlink(path)
        return result

    def isdir(self, path) -> bool:
        return os.path.isdir(self._strip_protocol(path))

    def exists(self, path, **kwargs) -> bool:
        try:
            self.info(path)
            return True
        except Exception:  # noqa: BLE001 - as fsspec's: any failure is "not there"
            return False

    def __getattr__(self, name: str):
        from fsspec.implementations.local import LocalFileSystem

        return getattr(LocalFileSystem(), name)

    def __reduce__(self):
        return LocalFiles, ()

    def __repr__(self) -> str:
        return "LocalFiles()"


def _local_posix_path(url: str) -> str | None:
    """A local path as fsspec's ``LocalFileSystem._strip_protocol`` writes it, or None when ``url``
    is not a plain local path on a POSIX system (then fsspec itself decides).

    >>> _local_posix_path("file:///tmp/logs/"), _local_posix_path("s3://bucket/key")
    ('/tmp/logs', None)
    """
    if os.sep != "/" or "::" in url or ("://" in url and not url.startswith(("file://", "local://"))):
        return None
    for prefix in ("file://", "file:", "local://", "local:"):
        if url.startswith(prefix):
            url = url[len(prefix):]
            break
    if url.startswith("~"):
        url = os.path.expanduser(url)
    elif not url.startswith("/"):
        url = f"{os.getcwd()}/{url[2:] if url.startswith('./') else '' if url == '.' else url}"
    return url.rstrip("/") or "/"


S3_CONNECTIONS = 64
"""Connections an S3 filesystem keeps at most (botocore's ``max_pool_connections``, 10 by default:
ten requests in flight for the whole job, one round trip per ten small files).  A job's
``storage_options`` may set its own: ``{"config_kwargs": {"max_pool_connections": N}}``."""


def with_connections(url: str, storage_options: dict | None) -> dict:
    """``storage_options`` for ``url`` with :data:`S3_CONNECTIONS` connections on S3 (unless set).

    >>> with_connections("s3://logs/", None)
    {'config_kwargs': {'max_pool_connections': 64}}
    >>> with_connections("s3://logs/", {"config_kwargs": {"max_pool_connections": 8}})
    {'config_kwargs': {'max_pool_connections': 8}}
    >>> with_connections("gs://logs/", {"token": "anon"})
    {'token': 'anon'}
    """
    options = dict(storage_options or {})
    if url.split("://", 1)[0].lower() in ("s3", "s3a") and "://" in url:
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("max_pool_connections", S3_CONNECTIONS)
        options["config_kwargs"] = config
    return options


def runs_async(fs, method: str) -> bool:
    """Whether ``fs`` is an asynchronous fsspec filesystem with coroutine ``method`` (s3fs, gcsfs,
    adlfs: requests in flight together on its event loop)."""
    return bool(getattr(fs, "async_impl", False)) and hasattr(fs, method)


def all_at_once(fs, calls: list, return_exceptions: bool = False) -> list:
    """The results of coroutines of ``fs`` (see :func:`runs_async`), awaited together on its event
    loop: one round trip for many requests, not one each."""
    import asyncio

    from fsspec.asyn import sync

    async def every() -> list:
        return await asyncio.gather(*calls, return_exceptions=return_exceptions)

    return sync(fs.loop, every)


def split_url(url, storage_options: dict | None = None):
    """``(filesystem, path)`` as ``fsspec.core.url_to_fs(url, **storage_options)`` gives them (with
    :func:`with_connections`); a plain local path without options gets :class:`LocalFiles` and the
    same path, without importing fsspec."""
    text = os.fspath(url)
    if not storage_options:
        local = _local_posix_path(text)
        if local is not None:
            return LocalFiles(), local
    from fsspec.core import url_to_fs

    return url_to_fs(text, **with_connections(text, storage_options))


def url_filesystem(url: str, storage_options: dict | None = None):
    """``fsspec.core.url_to_fs(url, **storage_options)`` (through :func:`split_url`), with a missing
    filesystem package (or a bad option) as a :class:`~l1stream.errors.UsageError` naming the extra
    to install.

    >>> url_filesystem("/tmp")[1]
    '/tmp'
    """
    from l1stream.errors import UsageError

    try:
        return split_url(url, storage_options)
    except ImportError as exc:
        protocol = str(url).split("://", 1)[0].lower() if "://" in str(url) else "file"
        extra = PROTOCOL_EXTRAS.get(protocol)
        how = f'pip install "l1stream[{extra}]"' if extra else "install the fsspec filesystem package it names"
        raise UsageError(f"cannot open {str(url)!r}: the {protocol}:// filesystem is not installed ({exc}); "
                         f"{how}") from exc
    except (TypeError, ValueError) as exc:
        raise UsageError(f"cannot open {str(url)!r}: {exc}") from exc


def is_local_path(url) -> bool:
    """True for a plain path or a ``file://`` URL (what MLflow can upload as an artifact).

    >>> is_local_path("results/report.html"), is_local_path("s3://bucket/report.html")
    (True, False)
    """
    text = os.fspath(url)
    return "://" not in text or text.startswith("file://")


def write_text(url: str, text: str, storage_options: dict | None = None) -> None:
    """Write ``text`` to a local path (atomic rename) or an fsspec URL (one PUT: atomic on object stores)."""
    fs, path = url_filesystem(url, storage_options)
    write_bytes(fs, path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_directory(url: str, storage_options: dict | None = None):
    """Yield ``(filesystem, staging_path)`` for a directory output, local or on object storage.

    Local: :func:`atomic_directory` (one atomic rename).  Object storage has no atomic rename:
    files are written under a hidden ``_l1stream-staging-*`` prefix inside the target (ignored by
    Spark/Hive/l1stream readers), then the previous files are removed, the new ones moved into
    place, and ``_SUCCESS`` written last.  A failure before that step leaves the previous output.
    """
    fs, path = url_filesystem(url, storage_options)
    if is_local(fs):
        with atomic_directory(path) as staging:
            yield fs, staging
        return
    path = path.rstrip("/")
    staging = f"{path}/_l1stream-staging-{uuid.uuid4().hex}"
    try:
        yield fs, staging
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(staging, recursive=True)
        raise
    new_files = [f for f in fs.find(staging)]
    old_files = [f for f in fs.find(path) if not f.startswith(staging + "/")] if fs.exists(path) else []
    if old_files:
        fs.rm(old_files)
    for f in new_files:
        fs.mv(f, path + f[len(staging):])
    with contextlib.suppress(Exception):
        fs.rm(staging, recursive=True)
    fs.pipe(f"{path}/_SUCCESS", b"")


def check_writable(outputs: dict, storage_options: dict | None = None) -> None:
    """Refuse, before any work, outputs that cannot be written: a read-only file system or a
    directory l1stream may not write to (local), a bucket that does not exist (object storage).

    ``outputs`` maps the option's name as the user wrote it to a path or URL (or ``None``).
    """
    for option, target in outputs.items():
        if not target:
            continue
        try:
            fs, path = split_url(target, storage_options)
        except (ImportError, ValueError):
            continue  # the write itself will say what is missing
        if is_local(fs):
            _check_local_writable(option, target, os.path.abspath(path))
            continue
        bucket = path.split("/", 1)[0]
        try:
            exists = fs.exists(bucket)
        except Exception as exc:  # connection errors, credentials: say where
            raise OutputError(f"{option} {target}: cannot check the bucket {bucket!r} ({type(exc).__name__}: "
                              f"{first_line(exc, '')})", path=str(target)) from None
        if not exists:
            raise OutputError(f"{option} {target}: the bucket {bucket!r} does not exist; create it or write "
                              f"elsewhere", path=str(target))


def _check_local_writable(option: str, target, path: str) -> None:
    existing = path
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    directory = existing if os.path.isdir(existing) else os.path.dirname(existing)
    try:
        read_only = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise OutputError(f"{option} {target}: {directory} is on a read-only file system; write elsewhere",
                          path=str(target))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {target}: l1stream may not write in {directory} (permissions); write "
                          f"elsewhere or change them", path=str(target))
