"""Side-by-side benchmark: l1stream against Polars, DuckDB, naive Dask, raw pyarrow decode and sklearn.

One command, one table, every engine measured on the same files in the same run:

    python benchmarks/run.py                 # 20M rows, whole-process and in-process, 3 repeats
    python benchmarks/run.py --rows 200e6    # the issue's headline size
    python benchmarks/run.py --scaling 20e6,100e6,200e6 --many-files --kernel --startup
    python benchmarks/run.py --quick         # CI: tiny data, checks the script and the exactness column

Data are generated deterministically by l1stream's demo generator (hive ``date=``/``model=``
partitions, float64 actual/prediction plus three other columns, 128Ki-row row groups) under
``benchmarks/data/`` and reused.  The page cache is warmed before timing.  Timings are medians;
"ulps" is each engine's distance from the exact MAE (l1stream must show 0 on every run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

# Each engine is a script body with ROOT bound; it prints the MAE as repr(float).
ENGINES = {
    "l1stream (threads)": "import l1stream; print(repr(l1stream.evaluate(ROOT).mae))",
    "l1stream (synchronous)": "import l1stream; print(repr(l1stream.evaluate(ROOT, scheduler='synchronous').mae))",
    "l1stream (processes)": "import l1stream; print(repr(l1stream.evaluate(ROOT, scheduler='processes').mae))",
    "l1stream (no C parts)": (  # pyarrow's decoder and the numpy kernel, as without a C compiler
        "import l1stream; os.environ['L1STREAM_NATIVE'] = '0'\n"
        "try: print(repr(l1stream.evaluate(ROOT).mae))\nfinally: os.environ.pop('L1STREAM_NATIVE')"),
    "polars streaming": (
        "import polars as pl; print(repr(pl.scan_parquet(ROOT + '/**/*.parquet', hive_partitioning=True)"
        ".select((pl.col('actual') - pl.col('prediction')).abs().mean()).collect(engine='streaming').item()))"),
    "duckdb avg": (
        "import duckdb; print(repr(duckdb.sql(f\"select avg(abs(actual - prediction)) from "
        "read_parquet('{ROOT}/**/*.parquet', hive_partitioning=true)\").fetchall()[0][0]))"),
    "duckdb fsum": (
        "import duckdb; print(repr(duckdb.sql(f\"select fsum(abs(actual - prediction)) / count(*) from "
        "read_parquet('{ROOT}/**/*.parquet', hive_partitioning=true)\").fetchall()[0][0]))"),
    "dask.dataframe naive": (
        "import dask.dataframe as dd; df = dd.read_parquet(ROOT, columns=['actual', 'prediction']); "
        "print(repr(float((df.actual - df.prediction).abs().mean().compute())))"),
    "pyarrow decode only": (
        "import glob; import pyarrow.parquet as pq; from concurrent.futures import ThreadPoolExecutor\n"
        "files = sorted(glob.glob(ROOT + '/**/*.parquet', recursive=True))\n"
        "read = lambda f: pq.read_table(f, columns=['actual', 'prediction'], use_threads=False).num_rows\n"
        "with ThreadPoolExecutor(os.cpu_count()) as ex: n = sum(ex.map(read, files))\n"
        "print('nan')"),
    "sklearn (load + compute)": (
        "import pyarrow.dataset as ds; from sklearn.metrics import mean_absolute_error\n"
        "t = ds.dataset(ROOT, partitioning='hive').to_table(columns=['actual', 'prediction'])\n"
        "print(repr(float(mean_absolute_error(t['actual'].to_numpy(), t['prediction'].to_numpy()))))"),
}
CLI_ENGINE = "l1stream CLI"
SKLEARN_MAX_ROWS = 50_000_000


def dataset(rows: int, files_per_partition: int = 1, days: int = 20, row_group_rows: int = 131072) -> str:
    """Generate (or reuse) a deterministic benchmark dataset; return its root."""
    from l1stream.sources.demo import write_demo_dataset

    root = os.path.join(DATA, f"rows{rows}-d{days}-f{files_per_partition}")
    started = time.perf_counter()
    write_demo_dataset(root, rows=rows, days=days, files_per_partition=files_per_partition,
                       row_group_rows=row_group_rows)
    elapsed = time.perf_counter() - started
    if elapsed > 1:
        print(f"# generated {rows:,} rows in {root} ({elapsed:.0f} s)", file=sys.stderr)
    return root


def warm(root: str) -> None:
    for base, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(base, name), "rb") as handle:
                while handle.read(1 << 24):
                    pass


# Peak RSS: the process's own high-water mark (VmHWM) read just before it exits; getrusage would
# also count the benchmark's own memory, inherited through fork() before exec().
PEAK = "\nimport sys; sys.stderr.write('VmHWM ' + open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"


# As on a user's machine: bytecode cached (a sandbox may set PYTHONDONTWRITEBYTECODE, which makes
# every process recompile every module without a .pyc: not what users' processes pay)
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _launch(argv: list) -> tuple[float, float, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=CHILD_ENV)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"engine failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    peak_kib = float(proc.stderr.rsplit("VmHWM ", 1)[1].split()[0])
    return wall, peak_kib / 1024, proc.stdout


def run_process(code: str, root: str) -> tuple[float, float, float]:
    """Run one engine in a fresh interpreter: (wall seconds, peak RSS MiB of its main process, answer)."""
    wall, peak, out = _launch([sys.executable, "-c", f"import os\nROOT = {root!r}\n{code}\n{PEAK}"])
    return wall, peak, float(out.strip().splitlines()[-1])


def run_cli(root: str) -> tuple[float, float, float]:
    """The CLI as a user runs it (python -m l1stream mae ROOT --json)."""
    code = (f"import sys; from l1stream.cli.commands import main\n"
            f"code = main(['mae', {root!r}, '--json', '--quiet'])\n{PEAK}\nsys.exit(code)")
    wall, peak, out = _launch([sys.executable, "-c", code])
    return wall, peak, json.loads(out)["mae"]


def run_in_process(code: str, root: str) -> tuple[float, float]:
    """Time an engine after its imports (imports happen on a first, untimed run)."""
    namespace = {"ROOT": root, "os": os, "print": lambda *a, **k: namespace.__setitem__("_out", a[0])}
    started = time.perf_counter()
    exec(code, namespace)
    return time.perf_counter() - started, float(namespace["_out"])


def ulps(value: float, exact: float) -> int | None:
    if value != value or exact != exact:
        return None
    a, b = np.array([value, exact]).view(np.int64)
    return int(abs(int(a) - int(b)))


def compare(root: str, rows: int, repeats: int, engines: list, in_process: bool) -> list:
    """Run each engine ``repeats`` times, whole-process and (optionally) in-process; return rows."""
    results = []
    warm(root)
    exact = None
    order = [CLI_ENGINE] + engines
    for name in order:
        if name.startswith("sklearn") and rows > SKLEARN_MAX_ROWS:
            continue
        walls, rss, answers = [], [], []
        for _ in range(repeats):
            wall, peak, answer = run_cli(root) if name == CLI_ENGINE else run_process(ENGINES[name], root)
            walls.append(wall), rss.append(peak), answers.append(answer)
        if name == CLI_ENGINE:
            exact = answers[0]
        inproc = []
        if in_process and name != CLI_ENGINE and "processes" not in name:
            run_in_process(ENGINES[name], root)  # imports and first-touch, untimed
            for _ in range(repeats):
                wall, answer = run_in_process(ENGINES[name], root)
                inproc.append(wall), answers.append(answer)
        results.append({"engine": name, "process_s": statistics.median(walls),
                        "inproc_s": statistics.median(inproc) if inproc else None,
                        "peak_rss_mib": max(rss), "answers": answers})
    for r in results:
        distances = [ulps(a, exact) for a in r["answers"]]
        r["ulps"] = None if None in distances else (min(distances), max(distances))
        r["answer"] = r["answers"][0]
    return results


def print_table(results: list, rows: int) -> None:
    ref = next(r for r in results if r["engine"] == "l1stream (threads)")
    ref_in, ref_proc = ref["inproc_s"] or ref["process_s"], ref["process_s"]
    header = (f"{'engine':26s} {'process s':>9s} {'in-proc s':>9s} {'Mrows/s':>8s} {'peak MiB':>8s} "
              f"{'l1s/peer':>8s} {'answer':>22s} {'ulps':>9s}")
    print(header)
    print("-" * len(header))
    for r in results:
        best = r["inproc_s"] or r["process_s"]
        ratio = (ref_in / r["inproc_s"]) if r["inproc_s"] else ref_proc / r["process_s"]
        u = "n/a" if r["ulps"] is None else (f"{r['ulps'][0]}" if r["ulps"][0] == r["ulps"][1]
                                               else f"{r['ulps'][0]}-{r['ulps'][1]}")
        inproc = f"{r['inproc_s']:.3f}" if r["inproc_s"] else "-"
        answer = "(decode only)" if r["answer"] != r["answer"] else repr(r["answer"])
        print(f"{r['engine']:26s} {r['process_s']:9.3f} {inproc:>9s} {rows / best / 1e6:8.1f} "
              f"{r['peak_rss_mib']:8.0f} {ratio:8.2f} {answer:>22s} {u:>9s}")
    print("l1s/peer: l1stream (threads) time / engine time, in-process where measured (< 1: l1stream faster)")


def kernel_bench() -> None:
    """ns/row of the exact kernel on one core (C and numpy), ordinary vs adversarial data, beside a naive sum."""
    from l1stream.exact.summation import ExactSum

    rng = np.random.default_rng(0)
    n = 4_000_000
    a = rng.lognormal(12, 0.5, n)
    cases = {
        "ordinary (house prices)": (a, a * rng.normal(1, 0.1, n)),
        "mixed signs (N(0,1))": (rng.normal(size=n), rng.normal(size=n)),
        "adversarial (whole float64 range)": (np.ldexp(rng.normal(size=n), rng.integers(-1070, 1020, n)),
                                              np.ldexp(rng.normal(size=n), rng.integers(-1070, 1020, n))),
    }

    def best(run) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return min(times) / n * 1e9

    def exact(x, y, native: str):
        os.environ["L1STREAM_NATIVE"] = native
        try:
            acc = ExactSum()
            acc.add_abs_diff(x, y)
            return acc.units
        finally:
            os.environ.pop("L1STREAM_NATIVE")

    print(f"{'kernel case':36s} {'C ns/row':>9s} {'numpy ns/row':>12s} {'naive ns/row':>12s}")
    for name, (x, y) in cases.items():
        assert exact(x, y, "1") == exact(x, y, "0")
        compiled = best(lambda x=x, y=y: exact(x, y, "1"))
        plain = best(lambda x=x, y=y: exact(x, y, "0"))
        with np.errstate(over="ignore"):
            naive = best(lambda x=x, y=y: np.abs(x - y).sum())
        print(f"{name:36s} {compiled:9.2f} {plain:12.2f} {naive:12.2f}")


def scaling(sizes: list, repeats: int) -> None:
    print(f"{'rows':>12s} {'l1stream CLI s':>14s} {'peak RSS MiB':>12s} {'Mrows/s':>8s}")
    for rows in sizes:
        root = dataset(rows)
        warm(root)
        runs = [run_cli(root) for _ in range(repeats)]
        wall = statistics.median(r[0] for r in runs)
        print(f"{rows:12,d} {wall:14.2f} {max(r[1] for r in runs):12.0f} {rows / wall / 1e6:8.1f}")


def many_files(files: int, rows_per_file: int) -> None:
    import l1stream
    from l1stream.engine.planning import plan_tasks
    from l1stream.sources.discovery import discover
    from l1stream.sources.filters import bind_filters

    days = files // 100
    root = dataset(files * rows_per_file, files_per_partition=50, days=days, row_group_rows=rows_per_file)
    warm(root)
    started = time.perf_counter()
    found = discover(root)
    plan = plan_tasks(found, bind_filters([], found.partition_types, None))
    planning = time.perf_counter() - started
    started = time.perf_counter()
    result = l1stream.evaluate(root)
    total = time.perf_counter() - started
    print(f"{len(found.files):,} files, {result.count:,} rows: planning {planning:.3f} s "
          f"({planning / len(found.files) * 1e3:.3f} ms/file, {len(plan.tasks)} tasks); "
          f"whole evaluation {total:.2f} s ({total / len(found.files) * 1e3:.3f} ms/file)")


def big_row_group(rows: int, repeats: int) -> None:
    """One file made of one huge row group: its rows split across tasks, beside one core and the peers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = os.path.join(DATA, f"one-row-group-{rows}")
    path = os.path.join(root, "part-0.parquet")
    if not os.path.exists(path):
        os.makedirs(root, exist_ok=True)
        rng = np.random.default_rng(5)
        actual = rng.lognormal(12.5, 0.4, rows)
        pq.write_table(pa.table({"actual": actual, "prediction": actual * rng.lognormal(0, 0.08, rows)}), path,
                       row_group_size=rows)
    warm(root)
    engines = {"l1stream (threads: row group split)": ENGINES["l1stream (threads)"],
               "l1stream (synchronous: one core)": ENGINES["l1stream (synchronous)"],
               "polars streaming": ENGINES["polars streaming"], "duckdb avg": ENGINES["duckdb avg"]}
    print(f"# one file, one row group of {rows:,} rows ({os.path.getsize(path) / 1e6:.0f} MB), in process")
    base = None
    for name, code in engines.items():
        run_in_process(code, root)
        wall = statistics.median(run_in_process(code, root)[0] for _ in range(repeats))
        base = base or wall
        print(f"{name:40s} {wall:7.3f} s   l1stream threads / this = {base / wall:5.2f}")


def startup() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "small.parquet")
        pq.write_table(pa.table({"actual": np.arange(1000.0), "prediction": np.arange(1000.0) + 1}), path)
        walls = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run(["l1stream", "mae", path, "--quiet"], check=True, capture_output=True)
            walls.append(time.perf_counter() - started)
    print(f"startup: `l1stream mae` on a 1,000-row file: median {statistics.median(walls):.2f} s wall")


def incremental(rows_per_day: int, repeats: int) -> None:
    """Nightly re-run: 30 days in the store, one new day lands; against full scans of the window."""
    import shutil

    import l1stream

    source = dataset(rows_per_day * 31, days=31)
    window = os.path.join(DATA, f"incremental-window-{rows_per_day}")
    store = os.path.join(DATA, f"incremental-store-{rows_per_day}")
    shutil.rmtree(window, ignore_errors=True)
    shutil.rmtree(store, ignore_errors=True)
    days = sorted(d for d in os.listdir(source) if d.startswith("date="))
    os.makedirs(window)
    for day in days[:30]:  # hard links: real files for every engine, no copy
        shutil.copytree(os.path.join(source, day), os.path.join(window, day), copy_function=os.link)
    l1stream.evaluate(window, store=store)  # the store holds 30 days
    shutil.copytree(os.path.join(source, days[30]), os.path.join(window, days[30]), copy_function=os.link)
    warm(source)
    timings = {}
    started = time.perf_counter()
    result = l1stream.evaluate(window, store=store)
    timings["l1stream incremental (in-process)"] = time.perf_counter() - started
    assert result.fragments["read"] == 2, result.fragments
    code = f"import l1stream; print(repr(l1stream.evaluate(ROOT, store={store!r}).mae))"
    timings["l1stream incremental (CLI process)"] = statistics.median(
        run_process(code, window)[0] for _ in range(repeats))
    full = run_in_process(ENGINES["l1stream (threads)"], window)
    timings["l1stream full scan (in-process)"] = statistics.median(
        run_in_process(ENGINES["l1stream (threads)"], window)[0] for _ in range(repeats))
    for name in ("polars streaming", "duckdb avg"):
        run_in_process(ENGINES[name], window)
        timings[f"{name} full scan (in-process)"] = statistics.median(
            run_in_process(ENGINES[name], window)[0] for _ in range(repeats))
    assert result.mae == full[1]
    base = timings["l1stream incremental (in-process)"]
    print(f"# incremental: 30 days in the store + 1 new day ({rows_per_day * 31:,} rows in the window); "
          f"same bits as the full scan: {result.mae == full[1]}")
    for name, seconds in timings.items():
        print(f"{name:40s} {seconds:8.3f} s   incremental / this = {base / seconds:5.2f}")


def machine() -> str:
    import pyarrow

    import l1stream

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, l1stream {l1stream.__version__}, "
            f"pyarrow {pyarrow.__version__}, {time.strftime('%Y-%m-%d')}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=float, default=20e6, help="rows in the side-by-side comparison")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of engines")
    parser.add_argument("--no-in-process", action="store_true", help="whole-process runs only")
    parser.add_argument("--scaling", default="", help="comma-separated row counts for the scaling run")
    parser.add_argument("--many-files", action="store_true", help="10,000 small files: planning overhead")
    parser.add_argument("--kernel", action="store_true", help="exact kernel ns/row on one core")
    parser.add_argument("--startup", action="store_true", help="CLI startup time on a tiny file")
    parser.add_argument("--big-row-group", type=float, default=0, metavar="ROWS",
                        help="one file of one row group of ROWS rows: split across tasks")
    parser.add_argument("--incremental", type=float, default=0, metavar="ROWS_PER_DAY",
                        help="nightly re-run with the state store: 30 stored days + 1 new day")
    parser.add_argument("--quick", action="store_true", help="CI mode: 200k rows, one repeat, exactness check")
    args = parser.parse_args(argv)
    print(f"# machine: {machine()}")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engine(s) {unknown}; known: {list(ENGINES)}")
    if args.quick:
        rows = 200_000
        root = dataset(rows, days=4)
        results = compare(root, rows, 1, engines, in_process=False)
        print_table(results, rows)
        _check_exact(root, results)
        kernel_bench()
        incremental(20_000, 1)
        return 0
    rows = int(args.rows)
    if engines:  # --engines '' runs only the extra sections
        root = dataset(rows)
        files = sum(len(f) for _, _, f in os.walk(root)) - 1
        print(f"# side by side: {rows:,} rows, {files} files, data in page cache")
        print_table(compare(root, rows, args.repeats, engines, not args.no_in_process), rows)
    if args.kernel:
        kernel_bench()
    if args.scaling:
        scaling([int(float(s)) for s in args.scaling.split(",")], max(1, args.repeats - 1))
    if args.many_files:
        many_files(10_000, 1000)
    if args.startup:
        startup()
    if args.big_row_group:
        big_row_group(int(args.big_row_group), args.repeats)
    if args.incremental:
        incremental(int(args.incremental), args.repeats)
    return 0


def _check_exact(root: str, results: list) -> None:
    """Quick mode: the l1stream answer equals an independent Fraction computation."""
    from fractions import Fraction

    import pyarrow.dataset as ds

    table = ds.dataset(root, partitioning="hive").to_table(columns=["actual", "prediction"])
    total = sum(abs(Fraction(a) - Fraction(p)) for a, p in zip(table["actual"].to_pylist(),
                                                                table["prediction"].to_pylist()))
    exact = total / table.num_rows
    expected = exact.numerator / exact.denominator
    got = next(r["answer"] for r in results if r["engine"] == CLI_ENGINE)
    status = "OK" if got == expected else "MISMATCH"
    print(f"exactness check against fractions.Fraction: {status} ({got!r} vs {expected!r})")
    if got != expected:
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(main())
