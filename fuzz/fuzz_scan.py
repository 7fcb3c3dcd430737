"""libFuzzer harness (atheris): whole Parquet files through l1stream's scan, differentially.

The same bytes are evaluated with the C decoder and with pyarrow alone (``L1STREAM_NATIVE=0``):
both must give the same exact state (MAE bits, counts, left-out counts) or both must fail with an
l1stream error (a located BadFileError and friends).  Any other exception, a disagreement, or a
sanitizer report is a finding.  See fuzz/README.md.
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["l1stream"]):
    import l1stream
    from l1stream.errors import L1StreamError

PATH = os.path.join(tempfile.mkdtemp(prefix="l1stream-fuzz-"), "input.parquet")


def outcome(native: str):
    os.environ["L1STREAM_NATIVE"] = native
    try:
        result = l1stream.evaluate(PATH, nan_policy="omit", scheduler="synchronous", chunk_rows=int(1000))
    except L1StreamError as exc:
        return ("error", type(exc).__name__)
    mae = result.mae
    return ("ok", repr(mae), result.count, tuple(sorted(result.left_out.items())))


def test_one_input(data: bytes) -> None:
    with open(PATH, "wb") as handle:
        handle.write(data)
    ours, theirs = outcome("1"), outcome("0")
    if ours[0] == "ok" or theirs[0] == "ok":
        assert ours == theirs, (ours, theirs)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
