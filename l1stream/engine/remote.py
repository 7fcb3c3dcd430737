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


def prefetch_small_files(pieces, filesystem) -> dict:
    """``{path: bytes}`` for the whole small files among ``pieces`` on a remote ``filesystem``."""
    if filesystem is None or is_local(filesystem):
        return {}
    wanted = {p.path: p.size for p in pieces
              if p.splits == 1 and not getattr(p, "stored", False) and 0 < p.size <= SMALL_FILE_BYTES}
    if not wanted:
        return {}
    try:
        fetched = _fetch_whole(filesystem, list(wanted))
    except Exception:  # noqa: BLE001 - the ordinary path reads (and reports) each file
        return {}
    if not isinstance(fetched, dict):  # one path: fsspec returns the bytes themselves
        fetched = {next(iter(wanted)): fetched}
    out = {}
    for path, data in fetched.items():
        key = path if path in wanted else filesystem._strip_protocol(path)
        if isinstance(data, (bytes, bytearray)) and key in wanted and len(data) == wanted[key]:
            out[key] = bytes(data)
    return out


def _fetch_whole(filesystem, paths: list):
    """``{path: bytes or exception}``: on an asynchronous filesystem every GET in flight together
    (``_cat_file`` gathered: fsspec's ``cat`` first asks whether each path exists, a HEAD per
    file where no listing of it is cached, as for a table's files); elsewhere ``cat``."""
    if not runs_async(filesystem, "_cat_file"):
        return filesystem.cat(paths, on_error="return")
    return dict(zip(paths, all_at_once(filesystem, [filesystem._cat_file(path) for path in paths],
                                       return_exceptions=True)))
