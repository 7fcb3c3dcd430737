"""l1stream's own executor for local graphs (engine/local.py): the same results as Dask's schedulers.

Each task runs once and only after the keys it reads; the first error is the error raised; a
result is dropped once its readers ran; the job's answers equal those of Dask's threaded
scheduler and an exact oracle.
"""

from __future__ import annotations

import threading
import time

import pytest
from helpers import exact_mae, write_parquet

from l1stream.engine.local import cpu_count, run_inline, run_threads
from l1stream.engine.schedulers import tree_graph


def test_a_tree_graph_gives_what_dask_gives():
    import dask.threaded

    def square(x, offset):
        return x * x + offset

    dsk, key = tree_graph("t", square, range(100), (7,), sum, split_every=4)
    expected = sum(x * x + 7 for x in range(100))
    assert run_threads(dsk, key, 3) == run_inline(dsk, key) == dask.threaded.get(dsk, key) == expected


def test_each_task_runs_once_after_what_it_reads_and_in_parallel():
    calls, lock, active, peak = [], threading.Lock(), [0], [0]

    def leaf(i):
        with lock:
            calls.append(i)
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return i

    def merge(values):
        assert all(isinstance(v, int) for v in values)
        return sum(values)

    dsk, key = tree_graph("t", leaf, range(12), (), merge, split_every=3)
    assert run_threads(dsk, key, 4) == sum(range(12))
    assert sorted(calls) == list(range(12))
    assert peak[0] > 1  # the leaves ran side by side


def test_the_first_error_is_raised_and_later_tasks_do_not_start():
    started = []

    def leaf(i):
        started.append(i)
        if i == 0:
            raise ValueError("leaf 0 failed")
        time.sleep(0.05)
        return i

    dsk, key = tree_graph("t", leaf, range(50), (), sum, split_every=4)
    with pytest.raises(ValueError, match="leaf 0 failed"):
        run_threads(dsk, key, 2)
    time.sleep(0.2)
    assert len(started) < 50


def test_results_are_dropped_once_read():
    seen = {}

    class Big:
        instances = 0

        def __init__(self):
            Big.instances += 1

        def __del__(self):
            Big.instances -= 1

    def leaf(i):
        return Big()

    def merge(values):
        seen.setdefault("alive", []).append(Big.instances)
        return len(values)

    dsk, key = tree_graph("t", leaf, range(32), (), merge, split_every=4)
    run_threads(dsk, key, 1)
    # the first merges each saw their own four leaves alive at most; the last merge saw none left:
    # every leaf was dropped once the merge that read it had run
    assert seen["alive"][-1] == 0 and max(seen["alive"]) <= 32


def test_the_cpu_count_is_dask_s():
    from dask.system import CPU_COUNT

    assert cpu_count() == CPU_COUNT


PROBE = """
import json, sys
import l1stream
result = l1stream.evaluate(sys.argv[1], task_bytes=1, scheduler=sys.argv[2] or None)
print(json.dumps({"mae": result.mae.hex(), "count": result.count, "dask": "dask" in sys.modules}))
"""


def test_a_job_of_many_tasks_is_exact_on_both_executors(tmp_path):
    import json
    import os
    import subprocess
    import sys

    a = [float(i) * 1.5 for i in range(40)]
    p = [float(i) * 1.25 + 3 for i in range(40)]
    for i in range(40):
        write_parquet(tmp_path / f"p{i:02d}.parquet", actual=[a[i]], prediction=[p[i]])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    runs = {}
    for scheduler in ("", "processes"):  # a task per file: 40 tasks and a merge tree, on ours, then on Dask's
        out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), scheduler], capture_output=True,
                             text=True, env={**env, "HOME": str(tmp_path)}, timeout=120, check=True)
        runs[scheduler] = json.loads(out.stdout.strip().splitlines()[-1])
    assert runs[""]["dask"] is False and runs["processes"]["dask"] is True
    for run in runs.values():
        assert float.fromhex(run["mae"]) == exact_mae(a, p) and run["count"] == 40
