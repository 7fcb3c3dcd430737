"""The state store: one exact partial state per input fragment, so re-runs read only what changed.

Layout (a local directory or an fsspec URL)::

    STORE/v2/<signature>/<path hash>-<identity hash>.json

``signature`` hashes everything that shapes a fragment's state (columns, ``by`` and
their types, row filters, ``nan_policy``); ``identity`` is the fragment's path,
size, version (ETag/generation on object stores, mtime+inode locally) and its
row-group split.  A rewritten file has a new identity, so its old entry is never
used; a deleted file's entries are dropped by the clean-up at the end of a run.

Safety: entries are content-addressed and written atomically (temporary name +
rename locally, one PUT on object stores), so concurrent runs can only write the
same bytes to the same name; an entry carries a SHA-256 of its state, and one that
does not verify (or cannot be read) is recomputed and rewritten.  An entry also carries the
identity and the signature it was computed for, checked on every load: an entry copied over
another, or any other mix-up, is recomputed and reported (``fragments.rejected``), never used.  A run killed
mid-way leaves only complete entries (and hidden temporaries, removed later).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time

from l1stream.engine.scan_state import ScanState, state_from_json, state_to_json
from l1stream.storage import is_local, write_bytes

log = logging.getLogger("l1stream")
FORMAT = 3  # 2: entries carry their identity and signature inside the checksum; 3: pieces split row groups


def json_digest(value) -> str:
    """SHA-256 (hex) of a value's canonical JSON: the store's keys and checksums, the history's config hash."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


class StateStore:
    """A view of the store for one evaluation signature (picklable: it travels to workers)."""

    def __init__(self, url: str, signature: dict, storage_options: dict | None = None) -> None:
        from l1stream.storage import url_filesystem

        self.fs, root = url_filesystem(url, storage_options)
        self.signature = json_digest({"format": FORMAT, **signature})[:32]
        self.directory = f"{root.rstrip('/')}/v{FORMAT}/{self.signature}"

    # -- keys ------------------------------------------------------------------------------------

    def key(self, identity: list) -> str:
        return f"{json_digest(identity[0])[:24]}-{json_digest(identity)[:32]}"

    def _entry(self, key: str) -> str:
        return f"{self.directory}/{key}.json"

    # -- entries ---------------------------------------------------------------------------------

    def existing(self) -> set:
        """Keys of the complete entries present now (one listing)."""
        try:
            names = self.fs.ls(self.directory, detail=False)
        except (FileNotFoundError, OSError):
            return set()
        bases = (os.path.basename(n) for n in names)
        return {b[:-5] for b in bases if b.endswith(".json") and not b.startswith(".")}

    def load(self, key: str, identity: list) -> tuple:
        """``(state, rejected)``: the stored state of the fragment ``identity``, or ``(None, False)``
        when there is no entry, or ``(None, True)`` when the entry is unreadable, fails its checksum,
        or was computed for another fragment or signature (logged; the caller recomputes it)."""
        try:
            opener = open if is_local(self.fs) else self.fs.open  # fsspec's local open: ~0.1 ms more per entry
            with opener(self._entry(key), "rb") as handle:
                doc = json.loads(handle.read())
            state = doc["state"]
            if doc.get("format") != FORMAT or doc.get("checksum") != json_digest(
                    [doc.get("identity"), doc.get("signature"), state]):
                raise ValueError("checksum mismatch")
            if json_digest(doc["identity"]) != json_digest(identity) or doc["signature"] != self.signature:
                theirs = json_digest(doc["identity"])[:12]
                raise ValueError(f"it was computed for {doc['identity'][0]!r} (identity {theirs}, signature "
                                 f"{doc['signature'][:12]}), not for this fragment of {identity[0]!r}")
            return state_from_json(state), False
        except FileNotFoundError:
            return None, False
        except Exception as exc:  # corrupt or misplaced entry: recompute it
            log.warning("state store entry %s is not used (%s); recomputing it", self._entry(key), exc)
            return None, True

    def save(self, key: str, identity: list, state: ScanState) -> None:
        body = state_to_json(state)
        data = json.dumps({"format": FORMAT, "identity": identity, "signature": self.signature,
                           "checksum": json_digest([identity, self.signature, body]), "state": body},
                          sort_keys=True).encode()
        write_bytes(self.fs, self._entry(key), data)

    def clean(self, keep: set, stale_seconds: float = 3600) -> int:
        """Remove entries not in ``keep`` (deleted or rewritten files) and old temporaries.

        Safe without a lock: an entry another run still needs is simply recomputed by it.
        """
        try:
            names = self.fs.ls(self.directory, detail=True)
        except (FileNotFoundError, OSError):
            return 0
        doomed = []
        now = time.time()
        for info in names:
            base = os.path.basename(info["name"])
            if base.startswith("."):
                mtime = info.get("mtime") or 0
                if mtime and now - float(mtime) > stale_seconds:
                    doomed.append(info["name"])
            elif base.endswith(".json") and base[:-5] not in keep:
                doomed.append(info["name"])
        for name in doomed:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(name)
        return len(doomed)




