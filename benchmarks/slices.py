"""MAE by a string column that is not a partition key, side by side, in process.

    python benchmarks/slices.py                 # 20 files of 1M rows, `model` a plain string column
    python benchmarks/slices.py --files 40

The data is written with pyarrow's defaults (snappy, dictionary-encoded strings), `model` one of
three values in every file.  Rows: l1stream on the paths and on a Dask DataFrame of them, a naive
Dask groupby mean of |actual - prediction| on the same frame, Polars and DuckDB on the paths.  Every
answer is checked against an exact integer oracle (the per-slice MAE, correctly rounded); the
peers' answers show their error in ulps.  Best of three runs each.  Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def write(root: str, files: int, rows: int) -> dict:
    """Write the files; return the exact per-slice MAE (integer sums on the 2**-1074 grid)."""
    rng = np.random.default_rng(0)
    sums, counts = {}, {}
    for i in range(files):
        a = rng.lognormal(12, 0.5, rows)
        p = a * rng.lognormal(0, 0.1, rows)
        model = rng.choice(np.array(["v1", "v2", "v3"]), rows)
        pq.write_table(pa.table({"actual": a, "prediction": p, "model": model}),
                       os.path.join(root, f"part-{i:03d}.parquet"))
        for m in ("v1", "v2", "v3"):
            keep = model == m
            sums[m] = sums.get(m, Fraction(0)) + sum(abs(Fraction(x) - Fraction(y))
                                                     for x, y in zip(a[keep].tolist(), p[keep].tolist()))
            counts[m] = counts.get(m, 0) + int(keep.sum())
    return {m: float(sums[m] / counts[m]) for m in sums}


def best(run, repeats: int = 3):
    times, answer = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        answer = run()
        times.append(time.perf_counter() - started)
    return min(times), answer


def ulps(got: dict, truth: dict) -> int:
    return max(abs(round((got[m] - truth[m]) / math.ulp(truth[m]))) for m in truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per file")
    args = parser.parse_args()

    import dask.dataframe as dd
    import duckdb
    import polars as pl

    import l1stream

    with tempfile.TemporaryDirectory() as root:
        print(f"writing {args.files} x {args.rows:,} rows and the exact oracle ...")
        truth = write(root, args.files, args.rows)
        frame = dd.read_parquet(root)

        def by_model(result):
            return {k[0]: v["mae"] for k, v in result.slice_numbers().items()}

        runs = {
            "l1stream paths": lambda: by_model(l1stream.evaluate(root, by="model")),
            "l1stream Dask DataFrame": lambda: by_model(l1stream.evaluate(frame, by="model")),
            "naive Dask groupby": lambda: frame.assign(e=(frame.actual - frame.prediction).abs())
            .groupby("model").e.mean().compute().to_dict(),
            "Polars": lambda: dict(pl.scan_parquet(os.path.join(root, "*.parquet"))
                                   .group_by("model").agg((pl.col("actual") - pl.col("prediction")).abs().mean())
                                   .collect().iter_rows()),
            "DuckDB": lambda: dict(duckdb.sql(f"select model, avg(abs(actual - prediction)) from "
                                              f"'{root}/*.parquet' group by model").fetchall()),
        }
        results = {name: best(run) for name, run in runs.items()}
        base = results["l1stream paths"][0]
        print(f"\n{'engine':<26}{'seconds':>9}{'x l1stream':>12}{'max ulps':>10}")
        for name, (seconds, answer) in results.items():
            print(f"{name:<26}{seconds:>9.3f}{seconds / base:>12.2f}{ulps(answer, truth):>10}")


if __name__ == "__main__":
    main()
