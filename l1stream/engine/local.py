"""Run l1stream's own Dask graphs in this process without importing Dask.

A local job builds the same graph whatever runs it (:func:`~l1stream.engine.schedulers.tree_graph`:
a dict of ``(function, *arguments)`` tasks whose arguments may be keys or lists of keys, in
Dask's graph format).  When this process has not imported Dask (no client, no ``dask.config``
in play: a CLI run, a cron job), importing Dask's threaded scheduler would cost about 70 ms of a
short job; these two functions compute such a graph with the standard library alone:

- :func:`run_inline`: in the calling thread (a graph of one task);
- :func:`run_threads`: on a pool of threads, each task once, as soon as the keys it reads are
  computed; a result is dropped once every task that reads it has run.

Everything else (Dask already imported, a progress bar, processes, a cluster) goes to Dask's own
schedulers (:func:`~l1stream.engine.schedulers.run_graph`).
"""

from __future__ import annotations

import os
import threading


def is_task(value) -> bool:
    return isinstance(value, tuple) and bool(value) and callable(value[0])


def _is_key(item, dsk: dict) -> bool:
    try:
        return item in dsk
    except TypeError:  # unhashable
        return False


def _keys_read(task: tuple, dsk: dict) -> list:
    """The graph keys a task's arguments name (directly, or inside lists)."""
    found: list = []

    def visit(item):
        if isinstance(item, list):
            for inner in item:
                visit(inner)
        elif isinstance(item, (str, tuple)) and _is_key(item, dsk):
            found.append(item)

    for argument in task[1:]:
        visit(argument)
    return found


def _call(task: tuple, values: dict):
    def value_of(item):
        if isinstance(item, list):
            return [value_of(inner) for inner in item]
        if isinstance(item, (str, tuple)) and _is_key(item, values):
            return values[item]
        return item

    return task[0](*(value_of(argument) for argument in task[1:]))


def run_inline(dsk: dict, key):
    """Compute ``key`` of a graph in this thread, each task once.

    Examples
    --------
    >>> run_inline({"x": 2, ("t", 0): (pow, "x", 3), ("m", 0): (sum, [("t", 0), ("t", 0)])}, ("m", 0))
    16
    """
    done: dict = {}

    def compute(k):
        if k not in done:
            task = dsk[k]
            if is_task(task):
                for needed in _keys_read(task, dsk):
                    compute(needed)
                done[k] = _call(task, done)
            else:
                done[k] = task
        return done[k]

    return compute(key)


_pools: dict = {}  # (process id, threads) -> a pool kept for the process (as Dask keeps its own)
_pools_lock = threading.Lock()


def _pool(threads: int):
    """A thread pool of ``threads`` kept for later runs: its threads keep the buffers the C parts
    hold per thread (page windows, decompression contexts), so a notebook's hundredth run
    allocates nothing new."""
    from concurrent.futures import ThreadPoolExecutor

    key = (os.getpid(), threads)  # a forked child has none of its parent's threads: a pool of its own
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="l1stream")
        return pool


def run_threads(dsk: dict, key, num_workers: int):
    """Compute ``key`` of a graph on ``num_workers`` threads: a task starts as soon as the keys it
    reads are computed (in the graph's order among those ready); the first error stops the rest
    from starting and is raised.

    Examples
    --------
    >>> dsk = {("t", i): (pow, i, 2) for i in range(5)}
    >>> dsk[("m", 0)] = (sum, [("t", i) for i in range(5)])
    >>> run_threads(dsk, ("m", 0), 2)
    30
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    values = {k: v for k, v in dsk.items() if not is_task(v)}
    reads = {k: _keys_read(v, dsk) for k, v in dsk.items() if is_task(v)}
    missing = {k: sum(1 for r in needed if r not in values) for k, needed in reads.items()}
    readers: dict = {}
    for k, needed in reads.items():
        for r in needed:
            readers.setdefault(r, []).append(k)
    left = {k: len(v) for k, v in readers.items() if k in reads}  # tasks still to read each result
    ready = [k for k, n in missing.items() if n == 0]
    pool = _pool(max(1, num_workers))
    running: dict = {}
    try:
        while ready or running:
            for k in ready:
                running[pool.submit(_call, dsk[k], values)] = k
            ready = []
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                k = running.pop(future)
                values[k] = future.result()
                for reader in readers.get(k, ()):
                    missing[reader] -= 1
                    if missing[reader] == 0:
                        ready.append(reader)
                for r in reads[k]:
                    if r in left:
                        left[r] -= 1
                        if left[r] == 0 and r != key:
                            del values[r]
        return values[key]
    finally:
        for future in running:  # after an error (or an interrupt): what has not started never will
            future.cancel()


def cpu_count() -> int:
    """Cores this process may use: its CPU affinity, bounded by a cgroup CPU quota (a container's
    limit), as Dask counts them (``dask.system.CPU_COUNT``), without importing Dask."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    for quota_file, period_file in (("/sys/fs/cgroup/cpu.max", None),
                                    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")):
        try:
            with open(quota_file) as handle:
                fields = handle.read().split()
            if period_file is not None:
                with open(period_file) as handle:
                    fields.append(handle.read().strip())
            quota, period = fields[0], fields[1]
        except (OSError, IndexError):
            continue
        if quota not in ("max", "-1") and int(period) > 0:
            count = min(count, max(1, -(-int(quota) // int(period))))
        break
    return max(1, count)
