"""Files l1stream did not shape: each writer's own defaults and codecs, l1stream beside Polars and DuckDB.

    python benchmarks/writers.py                   # 40M rows over 40 files per writer, 3 repeats
    python benchmarks/writers.py --rows 4e6 --repeats 1 --writers pyarrow-snappy,polars-zstd   # quick

The same kind of rows (lognormal actuals, predictions within ~8%) written by:

- ``pyarrow-snappy``: ``pq.write_table`` defaults (snappy, 1Mi-row row groups, dictionary on);
- ``pyarrow-zstd``, ``pyarrow-gzip``, ``pyarrow-lz4``: the same with another codec;
- ``polars-zstd``: ``DataFrame.write_parquet`` defaults (zstd);
- ``duckdb-snappy``: ``COPY ... (FORMAT parquet)`` defaults (snappy, 122,880-row row groups);
- ``spark-snappy``: Spark's ``DataFrame.write.parquet`` defaults (parquet-mr, snappy, v1 pages), from
  pyspark on the machine's JRE (skipped, and said, when there is none).

Each dataset is read in process (after a first, untimed run) and as a whole process (the CLI
against a Python script doing the same with Polars or DuckDB), median of ``--repeats``.  Every
l1stream answer is checked against an exact oracle (integer sums of the values pyarrow reads);
the peers' distance from it is shown in ulps.  Prints one table; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run import machine, run_cli, run_in_process, run_process, ulps, warm  # noqa: E402

WRITERS = ["pyarrow-snappy", "pyarrow-zstd", "polars-zstd", "duckdb-snappy", "spark-snappy", "pyarrow-gzip",
           "pyarrow-lz4"]
PEERS = {
    "polars": ("import polars as pl; print(repr(pl.scan_parquet(ROOT + '/**/*.parquet')"
               ".select((pl.col('actual') - pl.col('prediction')).abs().mean()).collect(engine='streaming').item()))"),
    "duckdb": ("import duckdb; print(repr(duckdb.sql(f\"select avg(abs(actual - prediction)) from "
               "read_parquet('{ROOT}/**/*.parquet')\").fetchall()[0][0]))"),
}
L1STREAM = "import l1stream; print(repr(l1stream.evaluate(ROOT).mae))"


def frame_part(rows: int, seed: int):
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    actual = rng.lognormal(12.5, 0.4, rows)
    return pa.table({"actual": actual, "prediction": actual * rng.lognormal(0, 0.08, rows),
                     "model": rng.choice(["v1", "v2", "v3"], rows)})


def write(writer: str, root: str, rows: int, files: int) -> None:
    """Write ``rows`` over ``files`` files into ``root`` with ``writer``'s own defaults."""
    import pyarrow.parquet as pq

    per_file = rows // files
    os.makedirs(root)
    if writer == "spark-snappy":
        return write_spark(root, rows, files)
    for i in range(files):
        table = frame_part(per_file, i)
        path = os.path.join(root, f"part-{i:04d}.parquet")
        if writer.startswith("pyarrow-"):
            pq.write_table(table, path, compression=writer.split("-")[1])
        elif writer == "polars-zstd":
            import polars as pl

            pl.from_arrow(table).write_parquet(path)
        elif writer == "duckdb-snappy":
            import duckdb

            con = duckdb.connect()
            con.register("t", table)
            con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
            con.close()


def write_spark(root: str, rows: int, files: int) -> None:
    code = f"""
from pyspark.sql import SparkSession, functions as F
spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.driver.host", "127.0.0.1").config("spark.driver.memory", "2g").getOrCreate())
frame = (spark.range(0, {rows}, numPartitions={files})
         .withColumn("actual", F.exp(F.randn(7) * 0.4 + 12.5))
         .withColumn("prediction", F.col("actual") * F.exp(F.randn(8) * 0.08))
         .withColumn("model", F.element_at(F.array(F.lit("v1"), F.lit("v2"), F.lit("v3")),
                                           (F.col("id") % 3 + 1).cast("int")))
         .drop("id"))
frame.write.mode("overwrite").parquet({root!r})
spark.stop()
"""
    os.rmdir(root)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def spark_available() -> bool:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return shutil.which("java") is not None


def exact_mae(root: str) -> float:
    """The exact MAE over pyarrow's read of each file: sum max(a, p) - sum min(a, p) as integers.

    Each double is m * 2**e with m a 53-bit integer; sums are grouped by e (numpy, 27-bit halves
    so no int64 overflows) and shifted into one Python integer, then divided once."""
    import glob
    from fractions import Fraction

    import pyarrow.parquet as pq

    total, count = 0, 0  # total: units of 2**-1100 (below every double's last bit)
    for path in sorted(glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True)):
        table = pq.read_table(path, columns=["actual", "prediction"])
        a, p = table["actual"].to_numpy(), table["prediction"].to_numpy()
        for values, sign in ((np.maximum(a, p), 1), (np.minimum(a, p), -1)):
            mantissa, exponent = np.frexp(values)
            ints = (mantissa * (1 << 53)).astype(np.int64)  # exact: |m| < 1, 53 bits
            high, low = ints >> 27, ints & ((1 << 27) - 1)
            for e in np.unique(exponent):
                pick = exponent == e
                part = (int(high[pick].sum()) << 27) + int(low[pick].sum())
                total += sign * (part << int(e - 53 + 1100))
        count += len(a)
    value = Fraction(total, count << 1100)
    return value.numerator / value.denominator


def measure(root: str, repeats: int) -> dict:
    warm(root)
    out = {}
    run_in_process(L1STREAM, root)
    out["l1stream"] = {"inproc": statistics.median(run_in_process(L1STREAM, root)[0] for _ in range(repeats)),
                       "process": statistics.median(run_cli(root)[0] for _ in range(repeats)),
                       "answer": run_in_process(L1STREAM, root)[1]}
    for name, code in PEERS.items():
        run_in_process(code, root)
        out[name] = {"inproc": statistics.median(run_in_process(code, root)[0] for _ in range(repeats)),
                     "process": statistics.median(run_process(code, root)[0] for _ in range(repeats)),
                     "answer": run_in_process(code, root)[1]}
    return out


def describe(root: str) -> str:
    import glob

    import pyarrow.parquet as pq

    files = sorted(glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True))
    meta = pq.ParquetFile(files[0]).metadata
    size = sum(os.path.getsize(f) for f in files)
    return (f"{len(files)} files, {size / 1e6:.0f} MB, {meta.num_row_groups} row groups/file, "
            f"{meta.row_group(0).column(0).compression}, {meta.created_by.split(' (')[0]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=40e6)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--writers", default=",".join(WRITERS))
    args = parser.parse_args(argv)
    rows, files = int(args.rows), args.files
    print(f"# machine: {machine()}")
    print(f"# {rows:,} rows over {files} files per writer; in process after one untimed run, and whole process "
          f"(l1stream CLI vs a Python script); median of {args.repeats}")
    header = (f"{'writer':15s} {'l1s in-proc':>11s} {'polars':>7s} {'duckdb':>7s} {'l1s/pl':>6s} {'l1s/dk':>6s} "
              f"{'l1s proc':>8s} {'polars':>7s} {'duckdb':>7s} {'l1s/pl':>6s} {'l1s/dk':>6s} {'ulps pl/dk':>10s}")
    lines = []
    for writer in [w.strip() for w in args.writers.split(",") if w.strip()]:
        if writer not in WRITERS:
            parser.error(f"unknown writer {writer!r}; known: {WRITERS}")
        if writer == "spark-snappy" and not spark_available():
            lines.append(f"{writer:15s} skipped: no pyspark or no java on this machine")
            continue
        root = os.path.join(HERE, "data", f"writers-{rows}-{files}", writer)
        if not os.path.isdir(root):
            started = time.perf_counter()
            write(writer, root, rows, files)
            print(f"# wrote {writer} in {time.perf_counter() - started:.0f} s: {describe(root)}", file=sys.stderr)
        exact = exact_mae(root)
        got = measure(root, args.repeats)
        if got["l1stream"]["answer"] != exact:
            raise SystemExit(f"{writer}: l1stream gave {got['l1stream']['answer']!r}, the exact MAE is {exact!r}")
        ours, pl, dk = got["l1stream"], got["polars"], got["duckdb"]
        lines.append(f"{writer:15s} {ours['inproc']:11.3f} {pl['inproc']:7.3f} {dk['inproc']:7.3f} "
                     f"{ours['inproc'] / pl['inproc']:6.2f} {ours['inproc'] / dk['inproc']:6.2f} "
                     f"{ours['process']:8.3f} {pl['process']:7.3f} {dk['process']:7.3f} "
                     f"{ours['process'] / pl['process']:6.2f} {ours['process'] / dk['process']:6.2f} "
                     f"{ulps(pl['answer'], exact)!s:>4s}/{ulps(dk['answer'], exact)!s:<5s}")
        lines.append(f"{'':15s} ({describe(root)})")
    print(header)
    print("-" * len(header))
    print("\n".join(lines))
    print("seconds; l1s/pl, l1s/dk: l1stream time / peer time (< 1: l1stream faster); l1stream's answer equals "
          "the exact MAE on every dataset (checked), ulps: the peers' distance from it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
