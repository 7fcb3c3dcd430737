"""Manual fuzzer for the exact core (not collected by pytest).

Random data of five kinds (whole float64 range, mixed scales, special values, near-equal
pairs, int64 near the limits), random chunk cuts and weights spanning 10**+-150, checked
against the Fraction/int ground truth in helpers.py:

    python tests/fuzz_exact.py [SEED] [SECONDS]

It found the negated-bins bug in weighted sums (fixed; regression tests in test_exact_core.py).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import exact_mae  # noqa: E402

from l1stream import L1State, chunk_state, mean_absolute_error  # noqa: E402

SPECIAL = [0.0, 5e-324, -5e-324, 1.7976931348623157e308, -1.7976931348623157e308, 1.0, 2.0**-1022]


def sample(rng, n: int):
    kind = int(rng.integers(0, 5))
    if kind == 0:
        return kind, np.ldexp(rng.normal(size=n), rng.integers(-1074, 1024, n)), \
            np.ldexp(rng.normal(size=n), rng.integers(-1074, 1024, n))
    if kind == 1:
        a = rng.normal(size=n) * 10.0 ** rng.integers(-300, 300)
        return kind, a, a + rng.normal(size=n) * 10.0 ** rng.integers(-300, 300)
    if kind == 2:
        return kind, rng.choice(SPECIAL, n), rng.choice([0.0, 5e-324, 1e308, -1e-308, 3.0], n)
    if kind == 3:
        a = rng.lognormal(10, 3, n)
        return kind, a, a * rng.lognormal(0, 1e-8, n)
    return kind, rng.integers(-2**62, 2**62, n), rng.integers(-2**62, 2**62, n)


def main() -> int:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else int(time.time())
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    rng = np.random.default_rng(seed)
    bad = cases = 0
    started = time.time()
    with np.errstate(over="ignore", invalid="ignore"):
        while time.time() - started < seconds:
            n = int(rng.integers(1, 3000))
            kind, a, p = sample(rng, n)
            if a.dtype.kind == "f":
                a, p = np.where(np.isfinite(a), a, 0.0), np.where(np.isfinite(p), p, 0.0)
            bounds = [0, *sorted(rng.integers(0, n + 1, rng.integers(0, 5))), n]
            state = L1State.empty()
            for lo, hi in zip(bounds, bounds[1:]):
                state = state.merge(chunk_state(a[lo:hi], p[lo:hi]))
            if state.mae != exact_mae(a.tolist(), p.tolist()):
                bad += 1
                print("mismatch", kind, n, state.mae)
            if n < 400:
                w = np.abs(rng.normal(size=n)) * 10.0 ** rng.integers(-150, 150)
                if mean_absolute_error(a, p, sample_weight=w) != exact_mae(a.tolist(), p.tolist(), w.tolist()):
                    bad += 1
                    print("weighted mismatch", kind, n)
            cases += 1
    print(f"seed {seed}: {cases} cases, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
