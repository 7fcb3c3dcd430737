"""libFuzzer harness (atheris): whole Parquet files through l1stream's scan, differentially.

The same bytes are evaluated four ways: summed as the pages decode with l1stream's own footer
reading (engine/direct.py, what a plain local job takes); summed as they decode with pyarrow's
footer reading (the ordinary scan); with the C decoder handing tables to the sum (what jobs with
weights, filters or slices take); and with pyarrow alone (``L1STREAM_NATIVE=0``).  All must give
the same exact state (MAE bits, counts, left-out counts) or all must fail with an l1stream error
(a located BadFileError and friends).  Any other exception, a disagreement, or a
sanitizer report is a finding.  See fuzz/README.md.
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["l1stream"]):
    import l1stream
    from l1stream.engine import scan, tasks
    from l1stream.errors import L1StreamError

LOCKSTEP, DIRECT = scan.compiled_abs_diff_sum, tasks.summed_piece

PATH = os.path.join(tempfile.mkdtemp(prefix="l1stream-fuzz-"), "input.parquet")


def outcome(native: str, lockstep: bool = True, direct: bool = True):
    os.environ["L1STREAM_NATIVE"] = native
    scan.compiled_abs_diff_sum = LOCKSTEP if lockstep else (lambda: None)
    tasks.summed_piece = DIRECT if direct else (lambda *args: None)
    try:
        result = l1stream.evaluate(PATH, nan_policy="omit", scheduler="synchronous", chunk_rows=int(1000))
    except L1StreamError as exc:
        return ("error", type(exc).__name__)
    mae = result.mae
    return ("ok", repr(mae), result.count, tuple(sorted(result.left_out.items())))


def test_one_input(data: bytes) -> None:
    with open(PATH, "wb") as handle:
        handle.write(data)
    runs = (outcome("1"), outcome("1", direct=False), outcome("1", lockstep=False, direct=False), outcome("0"))
    if any(run[0] == "ok" for run in runs):
        assert len(set(runs)) == 1, runs


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
