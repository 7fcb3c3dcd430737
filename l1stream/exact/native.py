"""Which compiled parts of the exact core run here, without numpy: the switch and the running sum.

``L1STREAM_NATIVE=0`` turns every C part off (the pure numpy/pyarrow paths then run, with the same
bits).  :func:`compiled_abs_diff_sum` is the exact sum the Parquet reader feeds while it decodes.
"""

from __future__ import annotations

import os
import sys

try:  # l1stream/exact/_kernel.c; optional
    from l1stream.exact._kernel import AbsDiffSum as _CompiledAbsDiffSum
except ImportError:  # built without a C compiler
    _CompiledAbsDiffSum = None


def native_enabled() -> bool:
    """False when ``L1STREAM_NATIVE=0`` asks for the pure numpy/pyarrow paths (read on each use),
    and on big-endian machines, where the C parts' byte copies would misread Parquet's
    little-endian values."""
    return sys.byteorder == "little" and os.environ.get("L1STREAM_NATIVE", "1") != "0"


def kernel_runs() -> bool:
    """Whether the C kernel (``_kernel.c``) is built and not turned off: what every consumer below
    needs, asked without making one."""
    return _CompiledAbsDiffSum is not None and native_enabled()


def compiled_abs_diff_sum():
    """A running exact sum of ``|a - b|`` that compiled code feeds, or None without the C kernel
    (or with it turned off).

    Its ``consumer()`` is a capsule (``l1stream/exact/_consumer.h``) through which the Parquet
    reader hands it rows while it decodes; ``units()`` is then the exact sum in 2**-1074 units
    (None once a value was NaN or infinite) and ``rows`` the rows taken.

    Examples
    --------
    >>> from array import array
    >>> total = compiled_abs_diff_sum()
    >>> if total is not None:
    ...     total.add(array("d", [1.0, 2.0]), array("d", [1.5, 0.0]))
    ...     assert (total.units(), total.rows) == (5 << 1073, 2)
    """
    if not kernel_runs():
        return None
    return _CompiledAbsDiffSum()


def compiled_profile_sum():
    """The error report's first-pass consumer (``_profile.h``: exact L1 blocks, the float losses'
    exact sum, squares, top-16-bit counts), or None without the C kernel (or with it turned off)."""
    if not kernel_runs():
        return None
    from l1stream.exact._kernel import ProfileSum

    return ProfileSum()


def feed_by(consumers: list, actual, prediction, codes) -> list:
    """Row ``i`` to ``consumers[codes[i]]`` (capsules from ``.consumer()``, or None to skip), the
    rows regrouped by code in C; returns the codes whose consumer declined.  Callers check that
    the kernel runs (:func:`kernel_runs`) first."""
    from l1stream.exact._kernel import feed_by as compiled_feed_by

    return compiled_feed_by(consumers, actual, prediction, codes)


def code_counts(codes, distinct: int):
    """``numpy.bincount(codes, minlength=distinct)`` for int64 codes in ``[0, distinct)``, counted
    in C where the kernel is there (a third of numpy's time on a 128Ki-row chunk of 10 codes).

    Examples
    --------
    >>> import numpy as np
    >>> code_counts(np.array([2, 0, 2], dtype=np.int64), 4).tolist()
    [1, 0, 2, 0]
    """
    import numpy as np

    if not kernel_runs() or codes.dtype != np.int64:
        return np.bincount(codes, minlength=distinct)
    from l1stream.exact._kernel import code_counts as compiled_code_counts

    return np.frombuffer(compiled_code_counts(np.ascontiguousarray(codes), distinct), dtype=np.int64)


def compiled_select_pass(buckets: list, tail_above: int | None = None):
    """The quantile passes' consumer (``_profile.h``): per bucket ``(prefix, bits, collect, span, shift)``
    the values or the counts of their next 16 - shift bits; the finite losses above ``tail_above``.
    None without the C kernel."""
    if not kernel_runs():
        return None
    from l1stream.exact._kernel import SelectPass

    return SelectPass(buckets, tail_above)


def tee(first, second):
    """One consumer capsule feeding the rows it is handed to two others, ``first`` then ``second``
    (``_kernel.tee``): the report's first pass profiles and selects in one read."""
    from l1stream.exact._kernel import tee as compiled_tee

    return compiled_tee(first, second)
