"""Reading from object storage at network speed: small files whole, many in flight.

On object storage every request costs a round trip (10-50 ms against a real store).  A task's
small files (at most :data:`SMALL_FILE_BYTES` each, whole files rather than row-group splits) are
fetched in one GET each, all of them concurrently through the filesystem's own ``cat`` (s3fs,
gcsfs and adlfs gather the requests on their event loop; fsspec's ``gather_batch_size`` bounds
how many are in flight), and then parsed from memory: footer, pages and all.  A task holds at
most ``task_bytes`` of files (the planner's bound), so memory stays flat.  Larger files are read
as before: the footer with one tail read, then the needed column chunks.

A file whose fetch fails, or whose size is not what the listing said, is left out of the
prefetch and read the ordinary way, which reports any error with its path.
"""

from __future__ import annotations

from l1stream.storage import all_at_once, is_local, runs_async

SMALL_FILE_BYTES = 8 << 20
"""Files up to this size are fetched whole, in one request."""

_PLANNED: dict = {}  # (path, size, version) -> bytes: the file the planner fetched, for the scan here


def fetch_for_planning(file, filesystem) -> bytes | None:
    """A small remote file (at most :data:`SMALL_FILE_BYTES`) fetched whole for the planner (its
    footer gives the schema), kept for the scan on this machine so it is not fetched twice; None
    for a larger file, or one that cannot be fetched (the scan reports why)."""
    if not 12 <= file.size <= SMALL_FILE_BYTES:
        return None
    try:
        data = filesystem.cat_file(file.path)
    except Exception:  # noqa: BLE001 - the ordinary path reads (and reports) this file
        return None
    if len(data) != file.size:
        return None
    _PLANNED.clear()
    _PLANNED[(file.path, file.size, file.version)] = data
    return data


def prefetch_small_files(pieces, filesystem) -> dict:
    """``{path: bytes}`` for the whole small files among ``pieces`` on a remote ``filesystem``."""
    if filesystem is None or is_local(filesystem):
        return {}
    wanted = {p.path: p.size for p in pieces
              if p.splits == 1 and not getattr(p, "stored", False) and 0 < p.size <= SMALL_FILE_BYTES}
    if not wanted:
        return {}
    planned = {}
    for piece in pieces:
        data = _PLANNED.pop((piece.path, piece.size, piece.version), None) if piece.path in wanted else None
        if data is not None:
            planned[piece.path] = data
    wanted = {path: size for path, size in wanted.items() if path not in planned}
    out = {**planned, **_fetch_lean(filesystem, wanted)} if wanted else planned
    rest = [path for path in wanted if path not in out]
    if not rest:
        return out
    try:
        fetched = _fetch_whole(filesystem, rest)
    except Exception:  # noqa: BLE001 - the ordinary path reads (and reports) each file
        return out
    if not isinstance(fetched, dict):  # one path: fsspec returns the bytes themselves
        fetched = {rest[0]: fetched}
    for path, data in fetched.items():
        key = path if path in wanted else filesystem._strip_protocol(path)
        if isinstance(data, (bytes, bytearray)) and key in wanted and len(data) == wanted[key]:
            out[key] = bytes(data)
    return out


def _fetch_lean(filesystem, wanted: dict) -> dict:
    """What :func:`l1stream.s3_gets.fetch` can fetch of ``wanted`` on S3, at a quarter of
    botocore's CPU per request; ``{}`` elsewhere, or on any failure of its own."""
    from l1stream import s3_gets
    from l1stream.storage import S3_CONNECTIONS

    if not s3_gets.usable(filesystem):
        return {}
    connections = (getattr(filesystem, "config_kwargs", None) or {}).get("max_pool_connections", S3_CONNECTIONS)
    try:
        return s3_gets.fetch(filesystem, wanted, connections)
    except Exception:  # noqa: BLE001 - s3fs reads (and reports) every file it did not fetch
        return {}


def _fetch_whole(filesystem, paths: list):
    """``{path: bytes or exception}``: on an asynchronous filesystem every GET in flight together
    (``_cat_file`` gathered: fsspec's ``cat`` first asks whether each path exists, a HEAD per
    file where no listing of it is cached, as for a table's files); elsewhere ``cat``."""
    if not runs_async(filesystem, "_cat_file"):
        return filesystem.cat(paths, on_error="return")
    return dict(zip(paths, all_at_once(filesystem, [filesystem._cat_file(path) for path in paths],
                                       return_exceptions=True)))
