"""The error report's cost beside the evaluation it explains, side by side in one run.

    python benchmarks/report.py                       # 20M and 200M demo rows (200M: 4.8 GB, made once)
    python benchmarks/report.py --rows 20e6 --repeats 5

For each size and each ``by``: ``l1stream.evaluate(ROOT, by=...)`` and
``l1stream.evaluate_report(ROOT, by=...)`` (histograms, exact L2, jackknife blocks, the MAE over
time, the exact median/p90/p99 overall and per slice, the top-1% share).  Times come from one fresh
interpreter running the two in turn (an untimed run of each, then ``--repeats`` pairs): the ratio is
the median of the pairs' ratios, so a machine that slows down for a minute (a shared VM: 10-30%
here) moves both sides of a ratio together.  Peak RSS comes from a fresh interpreter per engine.
The ratio report / evaluate is the figure issue #16 targets (<= 2.5x).
``by="model"`` is a partition key (the evaluation and the profile share one read); ``by="region"``
is a column in the files.  The data is :func:`l1stream.sources.demo.write_demo_dataset`'s (the
same as ``benchmarks/run.py``'s: snappy, dictionary-encoded, 128Ki-row row groups, page checksums)
plus, with ``--writers``, the 40M-row Polars-default (zstd) files of ``benchmarks/writers.py``.
Each report's MAE is checked equal to its evaluation's.  Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run import CHILD_ENV, PEAK, dataset, machine, warm  # noqa: E402

CHILD = """
import json, statistics, time
import l1stream
def once(kind):
    if kind == "evaluate":
        result = l1stream.evaluate(ROOT, by=BY)
        return result.mae, 1
    report = l1stream.evaluate_report(ROOT, by=BY)
    return report.result.mae, report.passes
def timed(kind):
    started = time.perf_counter()
    once(kind)
    return time.perf_counter() - started
if KIND == "pairs":
    once("evaluate"), once("report")
    pairs = [(timed("evaluate"), timed("report")) for _ in range(REPEATS)]
    print(json.dumps({"evaluate": statistics.median(e for e, _ in pairs),
                      "report": statistics.median(r for _, r in pairs),
                      "ratio": statistics.median(r / e for e, r in pairs)}))
else:
    mae, passes = once(KIND)
    print(json.dumps({"seconds": timed(KIND), "mae": mae, "passes": passes}))
"""


def measure(kind: str, root: str, by: str, repeats: int) -> dict:
    """A fresh interpreter: for ``kind`` "evaluate" or "report", the seconds of a run after an
    untimed one, its MAE, the passes over the data and the process's peak RSS (MiB); for "pairs",
    ``repeats`` (evaluate, report) pairs in turn: their medians and the median of their ratios."""
    code = f"KIND = {kind!r}\nROOT = {root!r}\nBY = {by!r}\nREPEATS = {repeats}\n{CHILD}\n{PEAK}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=CHILD_ENV)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed: {proc.stderr.strip().splitlines()[-3:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if "VmHWM " in proc.stderr:
        out["peak_mib"] = float(proc.stderr.rsplit("VmHWM ", 1)[1].split()[0]) / 1024
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="20e6,200e6", help="comma-separated sizes (demo rows)")
    parser.add_argument("--by", default="model,region", help="comma-separated slice columns, one run each")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--writers", action="store_true",
                        help="also the Polars-default (zstd) files of benchmarks/writers.py (40M rows)")
    args = parser.parse_args(argv)

    data = [(f"demo {float(rows) / 1e6:g}M", dataset(int(float(rows)))) for rows in args.rows.split(",")]
    if args.writers:
        polars = os.path.join(HERE, "data", "writers-40000000-40", "polars-zstd")
        if not os.path.isdir(polars):
            raise SystemExit(f"{polars}: not found; run python benchmarks/writers.py first (it writes them)")
        data.append(("Polars defaults (zstd) 40M", polars))
    print(f"# {machine()}")
    print(f"# {args.repeats} (evaluate, report) pairs in one process after an untimed run of each: medians, and the "
          f"median of the pairs' ratios; peak RSS: each engine in its own process")
    print(f"{'data':28s} {'by':8s} {'evaluate s':>11s} {'report s':>9s} {'report/evaluate':>16s} "
          f"{'passes':>7s} {'evaluate MiB':>13s} {'report MiB':>11s}")
    for name, root in data:
        warm(root)
        # the writers' files carry a model column (not a partition key), no region
        for by in ["model"] if name.startswith("Polars") else args.by.split(","):
            evaluated = measure("evaluate", root, by, 1)
            reported = measure("report", root, by, 1)
            if reported["mae"] != evaluated["mae"]:
                raise SystemExit(f"{name} by {by}: the report's MAE {reported['mae']!r} is not the evaluation's "
                                 f"{evaluated['mae']!r}")
            paired = measure("pairs", root, by, args.repeats)
            print(f"{name:28s} {by:8s} {paired['evaluate']:11.3f} {paired['report']:9.3f} {paired['ratio']:15.2f}x "
                  f"{reported['passes']:7d} {evaluated['peak_mib']:13.0f} {reported['peak_mib']:11.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
