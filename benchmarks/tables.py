"""Delta Lake and Iceberg tables next to plain Parquet, side by side with Polars, in one run.

    python benchmarks/tables.py                    # 20M rows, 20 files; 10,000-file table planning
    python benchmarks/tables.py --rows 2e6 --planning-files 2000 --repeats 1    # quick

The same rows are written three ways by their own libraries' defaults: pyarrow (snappy),
deltalake (snappy; the table is overwritten once, so removed files sit beside the live ones),
and pyiceberg with a SQL catalog on SQLite (zstd).  Each is evaluated in process by l1stream and by
Polars (``scan_parquet`` / ``scan_delta`` / ``scan_iceberg``), best of ``--repeats``.  Then the
planning cost of a 10,000-file Delta table read from its log, against listing the same files as a
plain directory.  Prints a table and ratios; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def rows_table(rows: int, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    actual = rng.lognormal(12.5, 0.4, rows)
    return pa.table({"actual": actual, "prediction": actual * rng.lognormal(0, 0.08, rows),
                     "model": rng.choice(["v1", "v2"], rows)})


def write_all(root: str, table: pa.Table, files: int) -> dict:
    from deltalake import write_deltalake
    from pyiceberg.catalog.sql import SqlCatalog

    paths = {"parquet": os.path.join(root, "parquet"), "delta": os.path.join(root, "delta")}
    os.makedirs(paths["parquet"])
    step = -(-table.num_rows // files)
    for i in range(files):
        pq.write_table(table.slice(i * step, step), os.path.join(paths["parquet"], f"part-{i:04d}.parquet"))
    stale = table.slice(0, min(table.num_rows, 100_000))
    write_deltalake(paths["delta"], stale)  # removed by the overwrite below: its files stay on disk
    for i in range(files):  # one file per commit
        write_deltalake(paths["delta"], table.slice(i * step, step), mode="overwrite" if i == 0 else "append")
    warehouse = os.path.join(root, "warehouse")
    os.makedirs(warehouse)
    catalog = SqlCatalog("bench", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{warehouse}")
    catalog.create_namespace("b")
    iceberg = catalog.create_table("b.preds", schema=table.schema)
    for i in range(files):
        iceberg.append(table.slice(i * step, step))
    paths["iceberg"] = iceberg.location().removeprefix("file://")
    paths["iceberg_metadata"] = iceberg.metadata_location
    return paths


def exact(table: pa.Table) -> float:
    a = table["actual"].to_numpy()
    p = table["prediction"].to_numpy()
    total = sum(Fraction(x) for x in np.abs(a - p).tolist()) if len(a) < 200_000 else None
    return float(total / len(a)) if total is not None else float("nan")


def best(run, repeats: int) -> tuple:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = run()
        times.append(time.perf_counter() - start)
    return min(times), value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=20e6)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--planning-files", type=int, default=10_000)
    args = parser.parse_args(argv)
    import polars as pl

    import l1stream

    root = tempfile.mkdtemp(prefix="l1stream-tables-")
    try:
        table = rows_table(int(args.rows))
        paths = write_all(root, table, args.files)
        engines = {
            "parquet": (lambda: l1stream.evaluate(paths["parquet"]).mae,
                        lambda: pl.scan_parquet(paths["parquet"] + "/*.parquet").select(
                            (pl.col("actual") - pl.col("prediction")).abs().mean()).collect().item()),
            "delta": (lambda: l1stream.evaluate(paths["delta"]).mae,
                      lambda: pl.scan_delta(paths["delta"]).select(
                          (pl.col("actual") - pl.col("prediction")).abs().mean()).collect().item()),
            "iceberg": (lambda: l1stream.evaluate(paths["iceberg"]).mae,
                        lambda: pl.scan_iceberg(paths["iceberg_metadata"]).select(
                            (pl.col("actual") - pl.col("prediction")).abs().mean()).collect().item()),
        }
        print(f"{int(args.rows):,} rows in {args.files} files; best of {args.repeats}; in process; "
              f"{os.cpu_count()} cores")
        print(f"{'source':10} {'l1stream s':>11} {'polars s':>9} {'l1s/polars':>10}  {'l1stream MAE':>20} "
              f"{'polars MAE':>20}")
        answers = set()
        for name, (ours, theirs) in engines.items():
            t_ours, v_ours = best(ours, args.repeats)
            try:
                t_theirs, v_theirs = best(theirs, args.repeats)
            except Exception as exc:  # a peer that cannot read this format here: say so
                t_theirs, v_theirs = float("nan"), f"({type(exc).__name__})"
            answers.add(v_ours)
            print(f"{name:10} {t_ours:11.3f} {t_theirs:9.3f} {t_ours / t_theirs:10.2f}  {v_ours!r:>20} "
                  f"{v_theirs!r:>20}")
        print(f"l1stream's answer is the same on all three: {len(answers) == 1}")
        planning(root, args.planning_files)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def planning(root: str, files: int) -> None:
    """Discovery of a ``files``-file Delta table from its log, against listing the same directory."""
    from deltalake import write_deltalake

    from l1stream.sources.discovery import discover

    path = os.path.join(root, "many")
    rows = files * 10
    many = rows_table(rows, seed=3)
    many = many.append_column("bucket", pa.array(np.arange(rows) % files))
    write_deltalake(path, many, partition_by=["bucket"])  # one file per partition, one commit
    start = time.perf_counter()
    found = discover(path)
    from_log = time.perf_counter() - start
    start = time.perf_counter()
    listed = discover(path, source_format="parquet")
    listing = time.perf_counter() - start
    print(f"planning a {len(found.files):,}-file Delta table: from its log {from_log:.3f} s "
          f"({from_log / len(found.files) * 1e3:.3f} ms/file); listing the directory as plain Parquet "
          f"{listing:.3f} s ({len(listed.files):,} files)")


if __name__ == "__main__":
    sys.exit(main())
