"""libFuzzer harness (atheris): whole Parquet files through l1stream's scan, differentially.

The same bytes are evaluated three ways: with the C decoder summing pages as they decode (the
lockstep sum, what a plain job takes), with the C decoder handing tables to the sum (what jobs with
weights, filters or slices take: the lockstep sum turned off here), and with pyarrow alone
(``L1STREAM_NATIVE=0``).  All must give the same exact state (MAE bits, counts, left-out counts) or
all must fail with an l1stream error (a located BadFileError and friends).  Any other exception, a disagreement, or a
sanitizer report is a finding.  See fuzz/README.md.
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["l1stream"]):
    import l1stream
    from l1stream.engine import scan
    from l1stream.errors import L1StreamError

LOCKSTEP = scan.compiled_abs_diff_sum

PATH = os.path.join(tempfile.mkdtemp(prefix="l1stream-fuzz-"), "input.parquet")


def outcome(native: str, lockstep: bool = True):
    os.environ["L1STREAM_NATIVE"] = native
    scan.compiled_abs_diff_sum = LOCKSTEP if lockstep else (lambda: None)
    try:
        result = l1stream.evaluate(PATH, nan_policy="omit", scheduler="synchronous", chunk_rows=int(1000))
    except L1StreamError as exc:
        return ("error", type(exc).__name__)
    mae = result.mae
    return ("ok", repr(mae), result.count, tuple(sorted(result.left_out.items())))


def test_one_input(data: bytes) -> None:
    with open(PATH, "wb") as handle:
        handle.write(data)
    summed, tables, theirs = outcome("1"), outcome("1", lockstep=False), outcome("0")
    if summed[0] == "ok" or tables[0] == "ok" or theirs[0] == "ok":
        assert summed == tables == theirs, (summed, tables, theirs)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
