"""Whole-process start-up, side by side: ``l1stream mae`` against a Polars and a DuckDB script.

    python benchmarks/startup.py              # a 1,000-row file, 15 runs each, medians
    python benchmarks/startup.py --runs 5

Each command runs as a user runs it (a fresh interpreter, the page cache warm), on the same
1,000-row file, after one untimed run.  Also prints the floor of this machine (an empty
interpreter; Python with numpy and pyarrow; plus Dask's threaded scheduler), and l1stream's
import-time breakdown (``python -X importtime``, top-level modules).  Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

# As on a user's machine: bytecode cached (a sandbox may set PYTHONDONTWRITEBYTECODE, which makes
# every run recompile every module that has no .pyc yet: not what users' processes pay)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def median_wall(argv: list, runs: int) -> float:
    subprocess.run(argv, capture_output=True, check=True, env=ENV)  # untimed: writes the bytecode
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=ENV)
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def import_breakdown(path: str) -> list:
    code = f"from l1stream.cli.commands import main; main(['mae', {path!r}, '--quiet'])"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=ENV)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, rest = line.split(":", 1)
        _, cumulative, name = rest.split("|")
        if not name.startswith("  "):  # top level: what the run imported, with everything below it
            rows.append((int(cumulative) / 1e3, name.strip()))
    return sorted(rows, reverse=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "small.parquet")
        pq.write_table(pa.table({"actual": np.arange(1000.0), "prediction": np.arange(1000.0) + 1}), path)
        py = sys.executable
        rows = {
            "l1stream mae (CLI)": [py, "-m", "l1stream", "mae", path, "--quiet"],
            "polars script": [py, "-c", "import polars as pl; print(pl.read_parquet(%r).select((pl.col('actual') - "
                              "pl.col('prediction')).abs().mean()).item())" % path],
            "duckdb script": [py, "-c", "import duckdb; print(duckdb.sql(\"select avg(abs(actual - prediction)) "
                              "from read_parquet('%s')\").fetchall()[0][0])" % path],
            "floor: python -c pass": [py, "-c", "pass"],
            "floor: import numpy, pyarrow.parquet": [py, "-c", "import numpy, pyarrow.parquet"],
            "floor: + dask.threaded": [py, "-c", "import numpy, pyarrow.parquet, dask.threaded"],
            "l1stream --version": [py, "-m", "l1stream", "--version"],
        }
        walls = {name: median_wall(argv, args.runs) for name, argv in rows.items()}
        ours = walls["l1stream mae (CLI)"]
        print(f"# whole process, a 1,000-row file, median of {args.runs} runs")
        print(f"{'command':40s} {'wall s':>7s} {'l1stream / this':>15s}")
        for name, wall in walls.items():
            print(f"{name:40s} {wall:7.3f} {ours / wall:15.2f}")
        print("\n# l1stream mae: import time by top-level module (ms, cumulative, python -X importtime)")
        for ms, name in import_breakdown(path)[:12]:
            print(f"{ms:8.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
