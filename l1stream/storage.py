"""Storage every layer shares: whether a filesystem is local, and outputs that are never half-written.

A file is written to a temporary name in its target directory, flushed and
fsynced, then renamed over the target (atomic on POSIX).  A directory output is
built under a temporary sibling and swapped in at the end.  A failure or an
interruption leaves the previous output intact and removes the temporary.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid


def is_local(fs) -> bool:
    """True for fsspec's local filesystem (protocol ``file``/``local``)."""
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


@contextlib.contextmanager
def atomic_directory(path: str):
    """Yield a temporary directory that replaces ``path`` only if the block succeeds."""
    path = os.path.abspath(path.rstrip("/"))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    temporary = os.path.join(parent, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
    os.makedirs(temporary)
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    old = None
    if os.path.exists(path):
        old = os.path.join(parent, f".{os.path.basename(path)}.old-{uuid.uuid4().hex}")
        os.replace(path, old)
    os.replace(temporary, path)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def write_bytes(fs, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` on ``fs`` whole or not at all (rename locally, one PUT remotely)."""
    if not is_local(fs):
        fs.pipe(path, data)
        return
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def write_text(url: str, text: str, storage_options: dict | None = None) -> None:
    """Write ``text`` to a local path (atomic rename) or an fsspec URL (one PUT: atomic on object stores)."""
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(url, **(storage_options or {}))
    write_bytes(fs, path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_directory(url: str, storage_options: dict | None = None):
    """Yield ``(filesystem, staging_path)`` for a directory output, local or on object storage.

    Local: :func:`atomic_directory` (one atomic rename).  Object storage has no atomic rename:
    files are written under a hidden ``_l1stream-staging-*`` prefix inside the target (ignored by
    Spark/Hive/l1stream readers), then the previous files are removed, the new ones moved into
    place, and ``_SUCCESS`` written last.  A failure before that step leaves the previous output.
    """
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(url, **(storage_options or {}))
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
