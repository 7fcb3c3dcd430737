"""The scan task: what each task of a job's graph runs, on a thread, a process or a Dask worker.

Each piece is summed straight from its pages when it can be (:mod:`l1stream.engine.direct`, no
numpy or pyarrow), else scanned the ordinary way (:mod:`l1stream.engine.scan`, imported then);
with a state store, stored pieces are loaded and fresh ones saved; a bad file raises or, under
``on_bad_file="skip"``, is recorded as skipped.
"""

from __future__ import annotations

from l1stream.engine.direct import summed_piece
from l1stream.engine.pieces import FramePart, ScanSpec
from l1stream.engine.remote import prefetch_small_files
from l1stream.engine.scan_state import ScanState
from l1stream.errors import BadFileError, SchemaError


def scan_pieces(pieces, spec: ScanSpec, filesystem, store=None) -> ScanState:
    """Scan every piece and return their merged state (a bad file raises or is skipped).

    With a :class:`~l1stream.engine.store.StateStore`, a piece marked ``stored`` is loaded from it
    (recomputed if the entry is missing or corrupt) and every freshly computed piece is saved.
    """
    result = ScanState.empty()
    fetched = prefetch_small_files([p for p in pieces if not isinstance(p, FramePart)], filesystem)
    for piece in pieces:
        try:
            if store is None:
                result = result.merge(scan_one(piece, spec, filesystem, fetched.pop(piece.path, None)))
                result.fragments_read += 1
                continue
            key = store.key(piece.identity)
            state, rejected = store.load(key, piece.identity) if piece.stored else (None, False)
            if state is not None:
                state.fragments_reused += 1
            else:
                state = scan_one(piece, spec, filesystem, fetched.pop(piece.path, None))
                store.save(key, piece.identity, state)
                state.fragments_read += 1
                state.fragments_rejected += rejected
            result = result.merge(state)
        except (BadFileError, SchemaError) as exc:
            if spec.on_bad_file != "skip":
                raise
            result.skipped[piece.path] = skipped_reason(getattr(exc, "problem", exc.message), piece.path)
    return result


def scan_one(piece, spec: ScanSpec, filesystem, data: bytes | None = None) -> ScanState:
    """One piece's state: summed from its pages if it can be, else scanned the ordinary way."""
    state = summed_piece(piece, spec, filesystem, data)
    if state is not None:
        return state
    from l1stream.engine.scan import scan_piece

    return scan_piece(piece, spec, filesystem, data)


def skipped_reason(reason: str, path: str) -> str:
    """A skipped file's reason, without the path its line already names."""
    return reason[len(path) + 2:] if reason.startswith(f"{path}: ") else reason
