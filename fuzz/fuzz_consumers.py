"""libFuzzer harness (atheris): the report's C consumers on arbitrary float64 values.

Input: byte 0 = slices (1 + b % 6), byte 1 = the length of the runs the rows are fed in, then
records of 17 bytes: actual and prediction (float64, any bit pattern: NaN, inf, subnormals,
2**1023) and a slice byte.  Checked against Fractions and numpy:

- ``tee`` of a ``ProfileSum`` and a ``SelectPass`` (the report's first pass): the twin's selection
  equals the lone ``SelectPass``'s, or the tee declines exactly when the ``ProfileSum`` does;
- ``ProfileSum``, one per slice, fed through ``feed_by`` run by run: it declines exactly when a
  row is out of its range (a value not finite or of magnitude 2**480 or more, a difference or its
  two-sum error nonzero below 2**-480); otherwise its L1 sum, rows, exact squares, exact sum of
  the float losses, top-16-bit counts and fractional count are the Fractions' and numpy's;
- ``SelectPass``, with buckets taken from the data (a collected digit, a count, a 32-bit prefix,
  a digit shared by two buckets, a window of 32-bit prefixes, counts over a span of digits, coarse
  counts) and a tail: declines exactly on a value that is not finite; otherwise each bucket equals
  numpy's selection in row order and the tail's rows and exact sum are the Fractions'.

Anything else (a wrong figure, a crash, a sanitizer report) is a finding.  See fuzz/README.md.
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import atheris

with atheris.instrument_imports(include=["l1stream"]):
    import numpy as np
    from l1stream.exact._kernel import ProfileSum, SelectPass, feed_by, tee

UNITS = 1 << 1074
HIGH, LOW = 2.0 ** 480, 2.0 ** -480


def out_of_range(a: float, p: float) -> bool:
    """Whether ProfileSum declines the row (_profile.h's first loop, written out)."""
    if not (abs(a) < HIGH and abs(p) < HIGH):
        return True
    d = a - p
    back = d - a
    e = (a - (d - back)) + (-p - back)
    return (d != 0.0 and abs(d) < LOW) or (e != 0.0 and abs(e) < LOW)


def check_profile(a, p, codes, slices: int, run: int) -> None:
    sums = [ProfileSum() for _ in range(slices)]
    declined: set = set()
    for start in range(0, len(a), run):
        stop = start + run
        declined |= set(feed_by([s.consumer() for s in sums], a[start:stop], p[start:stop], codes[start:stop]))
    for g, total in enumerate(sums):
        mine = codes == g
        rows = list(zip(a[mine].tolist(), p[mine].tolist()))
        should = any(out_of_range(x, y) for x, y in rows)
        cut = total.cut()
        if should:
            assert cut is None, (g, "took a row out of its range")
            continue
        assert g not in declined and cut is not None, (g, "declined rows in range")
        units, count = cut
        assert count == len(rows)
        assert Fraction(units, UNITS) == sum((abs(Fraction(x) - Fraction(y)) for x, y in rows), Fraction(0))
        totals = total.totals()
        losses = np.abs(a[mine] - p[mine])
        assert totals["rows"] == len(rows)
        assert Fraction(totals["squares_units"], UNITS) == sum(((Fraction(x) - Fraction(y)) ** 2 for x, y in rows),
                                                               Fraction(0))
        assert Fraction(totals["loss_units"], UNITS) == sum((Fraction(v) for v in losses.tolist()), Fraction(0))
        digits = np.bincount((losses.view(np.uint64) >> np.uint64(48)).astype(np.intp), minlength=1 << 16)
        assert dict(totals["digits"]) == {int(k): int(digits[k]) for k in np.flatnonzero(digits)}
        assert totals["fractional"] == sum(1 for v in losses.tolist() if v != math.floor(v))


def check_select(a, p, data: bytes) -> None:
    data = (data + bytes(5))[:5]  # the options: three digits, a 32-bit prefix, a tail
    finite = bool(np.isfinite(a).all() and np.isfinite(p).all())
    with np.errstate(over="ignore", invalid="ignore"):
        bits = np.abs(a - p).view(np.uint64)
    digits = (bits >> np.uint64(48)).astype(np.int64)
    pick = [int(digits[b % len(digits)]) for b in data[:3]] if len(digits) else [0, 0, 0]
    prefix32 = int(bits[data[3] % len(bits)] >> np.uint64(32)) if len(bits) else 0
    span = min(1 + data[2] * 257, (1 << 32) - prefix32)  # a window of 32-bit prefixes, maybe over digits
    buckets = [(pick[0], 16, True, 1, 0), (pick[1], 16, False, 1, 0), (prefix32, 32, True, 1, 0),
               (prefix32 >> 16, 16, True, 1, 0), (prefix32, 32, True, span, 0),
               (pick[2], 16, False, 1 + data[3] % 3 if pick[2] < 0xFFFD else 1, 0),
               (prefix32, 32, False, 1, data[4] % 16)]  # counted coarsely
    tail_above = int(bits[data[4] % len(bits)]) if len(bits) else None
    select = SelectPass(buckets, tail_above)
    took = select.add(a, p)
    assert took == finite, "declined finite values, or took a value that is not finite"
    if not took:
        return
    found, (tail_rows, tail_units) = select.results()
    # the same rows through a tee with a ProfileSum (the report's first pass): the same selection,
    # unless the ProfileSum declines (a row out of its range), which the tee then reports
    twin, profile = SelectPass(buckets, tail_above), ProfileSum()
    declined = feed_by([tee(profile.consumer(), twin.consumer())], a, p, np.zeros(len(a), np.int64))
    if any(out_of_range(x, y) for x, y in zip(a.tolist(), p.tolist())):
        assert declined == [0], "a tee took rows its ProfileSum declines"
    else:
        assert declined == [] and twin.results() == (found, (tail_rows, tail_units)), "a tee changed a selection"
    for (prefix, width, collect, span, shift), raw in zip(buckets, found):
        top = (bits >> np.uint64(64 - width)).astype(object)  # Python integers: no wrap-around here
        chosen = bits[np.array([prefix <= t < prefix + span for t in top], dtype=bool)] if len(bits) else bits
        if collect:
            assert np.array_equal(np.frombuffer(raw, dtype=np.uint64), chosen)
        else:
            nexts = ((chosen >> np.uint64(48 - width)) & np.uint64(0xFFFF)) >> np.uint64(shift)
            assert np.array_equal(np.frombuffer(raw, dtype=np.int64),
                                  np.bincount(nexts.astype(np.intp), minlength=(1 << 16) >> shift))
    if tail_above is not None:
        above = bits[(bits > np.uint64(tail_above)) & (bits < np.uint64(0x7FF0000000000000))].view(np.float64)
        assert tail_rows == len(above)
        assert Fraction(tail_units, UNITS) == sum((Fraction(v) for v in above.tolist()), Fraction(0))


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    slices, run = 1 + data[0] % 6, 1 + data[1]
    body = data[2:]
    count = len(body) // 17
    records = np.frombuffer(body[:count * 17], dtype=np.dtype([("a", "<f8"), ("p", "<f8"), ("g", "u1")]))
    a, p = np.ascontiguousarray(records["a"]), np.ascontiguousarray(records["p"])
    codes = (records["g"] % slices).astype(np.int64)
    check_profile(a, p, codes, slices, run)
    check_select(a, p, body[count * 17:] or data[:5])


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
