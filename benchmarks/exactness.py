"""The README's "Why exact matters" table: the MAE of the demo's data from l1stream, DuckDB and Polars.

    python benchmarks/exactness.py                    # the demo's 4M rows in ./l1stream-demo (written if missing)
    python benchmarks/exactness.py --root DIR --rows 20e6

Writes the demo dataset (``l1stream demo``'s own writer, same seed) unless it is there, then
prints, as a Markdown table, each engine's answer and its distance from the exact MAE (an
independent oracle: integer sums over pyarrow's read of every file, in ``writers.exact_mae``):
l1stream under several schedulers and chunk sizes, DuckDB's ``avg`` on 1 and 2 threads (three runs),
DuckDB's ``fsum`` and Polars' streaming ``mean``.  ``tests/test_readme.py`` checks the l1stream row
of the README's table against what ``l1stream demo`` prints.
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run import ulps  # noqa: E402
from writers import exact_mae  # noqa: E402


def l1stream_answers(root: str) -> list:
    import l1stream

    runs = [dict(scheduler="threads"), dict(scheduler="synchronous"), dict(scheduler="threads", num_workers=1),
            dict(scheduler="threads", chunk_rows=10_000), dict(scheduler="processes", num_workers=2)]
    return [l1stream.evaluate(root, by=["model"], **options).mae for options in runs]


def duckdb_answers(root: str, threads: int, runs: int, function: str = "avg") -> list:
    import duckdb

    answers = []
    for _ in range(runs):
        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        query = (f"select {function}(abs(actual - prediction)) from "
                 f"read_parquet('{root}/**/*.parquet', hive_partitioning = true)")
        answers.append(con.execute(query).fetchall()[0][0])
        con.close()
    return answers


def polars_answer(root: str) -> float:
    import polars as pl

    frame = pl.scan_parquet(f"{root}/**/*.parquet").select((pl.col("actual") - pl.col("prediction")).abs().mean())
    return frame.collect(engine="streaming").item()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="l1stream-demo", help="the demo data directory (default: ./l1stream-demo)")
    parser.add_argument("--rows", type=float, default=None, help="rows to write when the directory is missing")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        from l1stream.sources.demo import DEFAULT_ROWS, write_demo_dataset

        write_demo_dataset(args.root, rows=int(args.rows or DEFAULT_ROWS))
    root = os.path.abspath(args.root)
    exact = exact_mae(root)

    def row(engine: str, answers: list) -> str:
        distances = sorted({ulps(a, exact) for a in answers})
        shown = ", ".join(f"`{a!r}`" for a in dict.fromkeys(answers))
        far = ", ".join(f"{d:,}" for d in distances) + " ulp" + (": changes run to run" if len(distances) > 1 else "")
        return f"| {engine} | {shown} | {far} |"

    import duckdb
    import polars

    print(f"{root}: exact MAE {exact!r} (Fraction oracle over pyarrow's read); duckdb {duckdb.__version__}, "
          f"polars {polars.__version__}\n")
    print("| engine | MAE returned | distance from the exact MAE |")
    print("| --- | --- | --- |")
    print(row("**l1stream** (threads, synchronous, 1 thread, 10k-row chunks, 2 processes)", l1stream_answers(root)))
    print(row("DuckDB `avg(abs(a - p))`, 1 thread, three runs", duckdb_answers(root, 1, 3)))
    print(row("DuckDB `avg(abs(a - p))`, 2 threads, three runs", duckdb_answers(root, 2, 3)))
    print(row("DuckDB `fsum(abs(a - p))` / n, 2 threads", [duckdb_answers(root, 2, 1, "fsum")[0] / _rows(root)]))
    print(row("Polars streaming `mean`", [polars_answer(root)]))
    return 0


def _rows(root: str) -> int:
    import glob

    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in glob.glob(f"{root}/**/*.parquet", recursive=True))


if __name__ == "__main__":
    sys.exit(main())
