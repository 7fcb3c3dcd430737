"""Which Dask scheduler runs the graph: local threads by default, or anything Dask offers.

``scheduler`` accepts ``None``/``"threads"`` (in-process thread pool, the
default), ``"processes"``, ``"synchronous"``, a ``distributed.Client``, a
``concurrent.futures.Executor``, a Dask ``get`` function, or a scheduler address
such as ``"tcp://10.0.0.5:8786"`` (a client is opened for the run and closed after).

With ``scheduler=None`` the choice is Dask's own: ``dask.config.set(scheduler=...)``
(any of the above, or ``"distributed"`` for the active client) if set, else the active
``distributed.Client``, else local threads.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

from l1stream.engine.local import cpu_count, is_task, run_inline, run_threads
from l1stream.errors import L1StreamError, UsageError, first_line

LOCAL_SCHEDULERS = {
    "threads": "threads", "threading": "threads",
    "processes": "processes", "multiprocessing": "processes",
    "synchronous": "sync", "sync": "sync", "single-threaded": "sync",
}
ADDRESS_PREFIXES = ("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")


def validate_scheduler(scheduler) -> None:
    """Raise :class:`UsageError` unless ``scheduler`` is one of the accepted forms."""
    if scheduler is None or _is_client(scheduler) or _is_executor(scheduler) or callable(scheduler):
        return
    if isinstance(scheduler, str) and scheduler in ("distributed", "dask.distributed"):
        return
    if isinstance(scheduler, str) and scheduler in LOCAL_SCHEDULERS:
        return
    if isinstance(scheduler, str) and scheduler.startswith(ADDRESS_PREFIXES):
        _check_address(scheduler)
        return
    raise UsageError(f"scheduler must be one of {', '.join(sorted(set(LOCAL_SCHEDULERS)))}, 'distributed' (the "
                     f"active client), a scheduler address like 'tcp://host:8786', a distributed.Client, a "
                     f"concurrent.futures.Executor or a Dask get function; got {scheduler!r}")


def _check_address(address: str) -> None:
    """A scheduler address needs a host and a port in 1..65535 (``inproc://`` needs neither).

    >>> _check_address("tcp://127.0.0.1:8786")
    >>> _check_address("tcp://host:notaport")
    Traceback (most recent call last):
    ...
    l1stream.errors.UsageError: scheduler address 'tcp://host:notaport': the port must be a number in 1..65535, like tcp://scheduler:8786
    """
    protocol, _, rest = address.partition("://")
    if protocol == "inproc":
        return
    host, colon, port = rest.rpartition(":")
    if not colon:
        host, port = rest, ""
    if not host.strip("[]"):
        raise UsageError(f"scheduler address {address!r}: no host; give one like {protocol}://scheduler:8786")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"scheduler address {address!r}: the port must be a number in 1..65535, like "
                         f"{protocol}://scheduler:8786")


def scheduler_label(scheduler) -> str:
    """A short name for reports: ``threads``, ``processes``, ``sync``, ``distributed:<address>``,
    ``executor:<class>`` or ``get:<function>``."""
    scheduler = resolve_default(scheduler)
    if scheduler is None:
        return "threads"
    if _is_client(scheduler):
        return f"distributed:{scheduler.scheduler.address}"
    if _is_executor(scheduler):
        return f"executor:{type(scheduler).__name__}"
    if callable(scheduler):
        return f"get:{getattr(scheduler, '__qualname__', type(scheduler).__name__)}"
    if scheduler.startswith(ADDRESS_PREFIXES):
        return f"distributed:{scheduler}"
    return LOCAL_SCHEDULERS[scheduler]


def tree_graph(name: str, func, items, shared: tuple, merge, split_every: int = 16) -> tuple[dict, object]:
    """A raw Dask graph: ``func(item, *shared)`` per item, then a tree of ``merge(list)``.

    Built directly as a dict (no ``dask.delayed`` tokenising of every argument: planning
    stays linear and cheap at 100,000 tasks), with ``shared`` objects stored once as
    graph keys rather than copied into every task.
    """
    import uuid

    token = uuid.uuid4().hex
    dsk: dict = {}
    shared_keys = []
    for i, obj in enumerate(shared):
        shared_key = f"{name}-shared-{i}-{token}"
        dsk[shared_key] = obj
        shared_keys.append(shared_key)
    level = []
    for i, item in enumerate(items):
        key = (f"{name}-{token}", i)
        dsk[key] = (func, item, *shared_keys)
        level.append(key)
    depth = 0
    while len(level) > 1:
        depth += 1
        next_level = []
        for j in range(0, len(level), split_every):
            key = (f"{name}-merge{depth}-{token}", j // split_every)
            dsk[key] = (merge, list(level[j:j + split_every]))
            next_level.append(key)
        level = next_level
    return dsk, level[0]


def delayed_tree(func, parts, shared: tuple, merge, split_every: int = 16):
    """``func(part, index, *shared)`` for each Dask delayed ``part`` (a DataFrame's partitions),
    then a tree of ``merge(list)``: the :func:`tree_graph` of data that is already in Dask."""
    import dask

    task, merger = dask.delayed(func, pure=True), dask.delayed(merge, pure=True)
    level = [task(part, i, *shared) for i, part in enumerate(parts)]
    while len(level) > 1:
        level = [merger(level[i:i + split_every]) for i in range(0, len(level), split_every)]
    return level[0]


@contextlib.contextmanager
def _quiet_distributed():
    """distributed logs a traceback per lost connection; l1stream raises one clear error instead.
    Its logs stay on with ``--verbose`` (the ``l1stream`` logger at INFO or below)."""
    import logging

    if logging.getLogger("l1stream").getEffectiveLevel() <= logging.INFO:
        yield
        return
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in ("distributed", "tornado",
                                                                                     "asyncio")]
    loggers = [logging.getLogger(name) for name in ["distributed", "tornado", "asyncio", *names]]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _comm_fault(exc: Exception) -> bool:
    """A lost connection to the scheduler, as distributed reports it."""
    import asyncio

    return isinstance(exc, (OSError, TimeoutError, asyncio.CancelledError)) or type(exc).__name__ in (
        "CommClosedError", "CancelledError", "FutureCancelledError")


def run_graph(graph, scheduler, num_workers, progress: bool):
    """Compute a Dask delayed object, or a ``(graph dict, key)`` pair, on the chosen scheduler.

    With ``scheduler=None``, a ``distributed.Client`` that is already active in this
    process is used (Dask's own convention, for notebooks); otherwise local threads.
    """
    if isinstance(graph, tuple):
        dsk, key = graph
        if (scheduler in (None, "threads", "sync", "synchronous") and not progress and "dask" not in sys.modules
                and not dask_configured()):
            # nothing imported Dask (so no client, no dask.config.set) and no Dask configuration to honour:
            # run the graph here rather than pay ~70 ms of importing Dask's scheduler for it
            if scheduler in ("sync", "synchronous") or sum(1 for task in dsk.values() if is_task(task)) <= 1:
                return run_inline(dsk, key)
            return run_threads(dsk, key, num_workers or default_threads() or 1)
    else:
        dsk, key = dict(graph.__dask_graph__()), graph.__dask_keys__()[0]
    scheduler = resolve_default(scheduler)
    if _is_client(scheduler):
        return scheduler.get(dsk, key)
    if scheduler is not None and not isinstance(scheduler, str):  # an Executor or a get function
        from dask.base import get_scheduler

        return get_scheduler(scheduler=scheduler)(dsk, key)
    if isinstance(scheduler, str) and scheduler.startswith(ADDRESS_PREFIXES):
        import dask
        from distributed import Client

        from l1stream.errors import ClusterError

        started = time.monotonic()
        try:
            client = Client(scheduler)  # waits distributed.comm.timeouts.connect (30 s by default)
        except (OSError, TimeoutError) as exc:
            limit = dask.config.get("distributed.comm.timeouts.connect")
            waited = time.monotonic() - started
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} (waited {waited:.0f} s; the limit is "
                               f"distributed.comm.timeouts.connect = {limit}: set DASK_DISTRIBUTED__COMM__TIMEOUTS__"
                               f"CONNECT=60s to wait longer): {exc}") from None
        with _quiet_distributed(), client:
            try:
                return client.get(dsk, key)
            except L1StreamError:
                raise
            except Exception as exc:
                if client.status == "running" and not _comm_fault(exc):
                    raise
                raise ClusterError(f"the Dask scheduler at {scheduler} went away during the run "
                                   f"({type(exc).__name__}: {first_line(exc, '')}); "
                                   f"nothing was written; run again when the cluster is back") from None
    name = LOCAL_SCHEDULERS[scheduler or "threads"]
    get = _local_get(name)
    if name == "threads" and not num_workers:
        num_workers = default_threads()
    kwargs = {"num_workers": num_workers} if num_workers and name != "sync" else {}
    # The local schedulers' get() directly: dask.compute would import distributed (~0.3 s)
    # just to look for a client, which a short CLI run pays for nothing.
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar(out=sys.stderr, minimum=1.0):
            return get(dsk, key, **kwargs)
    return get(dsk, key, **kwargs)


LOCAL_CONFIG_KEYS = ("scheduler", "num_workers", "pool")  # what Dask's configuration may say of a local run


def dask_configured() -> bool:
    """Whether Dask's configuration sets how a local graph runs (``scheduler``, ``num_workers``,
    ``pool``): in ``DASK_SCHEDULER``-style environment variables, or at the top level of a file in
    Dask's configuration folders (``DASK_CONFIG``, ``~/.config/dask``, ``{sys.prefix}/etc/dask``,
    ``/etc/dask``).  Then Dask's own scheduler runs the graph, so that the setting is honoured.
    Read as text, without importing Dask or a YAML parser (other keys, dask-jobqueue's say, do not count).
    """
    import re

    if any(f"DASK_{key.upper()}" in os.environ for key in LOCAL_CONFIG_KEYS):
        return True
    keys = "|".join(LOCAL_CONFIG_KEYS)
    pattern = re.compile(rf'^(?:{keys})\s*:|"(?:{keys})"\s*:', re.M)
    folders = [os.environ.get("DASK_CONFIG", ""), os.path.join(os.path.expanduser("~"), ".config", "dask"),
               os.path.join(sys.prefix, "etc", "dask"), "/etc/dask"]
    for folder in filter(None, folders):
        try:
            names = [n for n in os.listdir(folder) if n.endswith((".yaml", ".yml", ".json"))]
        except OSError:
            continue
        for name in names:
            try:
                with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as handle:
                    if pattern.search(handle.read()):
                        return True
            except OSError:
                continue
    return False


def default_threads() -> int | None:
    """Threads of the local scheduler, unless Dask's ``num_workers`` is set: one per core with
    l1stream's C decoder, one per core plus one without it.

    The C decoder releases the GIL for a whole row group, so one thread per core keeps every core
    busy (200M rows on 2 cores: median 2.35 s with 2 threads, 2.38 s with 3; 20M rows: 13.2 vs
    16.0 ns/row).  pyarrow's reader holds it for longer steps, and an extra thread keeps the
    cores decoding meanwhile (5.0 s with 3 threads, 5.9 s with 2).
    """
    from l1stream.parquet.chunks import native_decoder_enabled

    if "dask" in sys.modules:
        import dask

        if dask.config.get("num_workers", None):
            return None
    cores = cpu_count()  # cores this process may use (affinity, cgroup quota), as Dask counts them
    return cores if native_decoder_enabled() else cores + 1


def _local_get(name: str):
    get: Any
    if name == "threads":
        from dask.threaded import get
    elif name == "processes":
        from dask.multiprocessing import get
    else:
        from dask.local import get_sync as get
    return get


def scheduler_from_file(path) -> str:
    """The address in a scheduler file (``dask scheduler --scheduler-file PATH`` writes it; so does the
    SLURM script in ``jobs/slurm``).

    Examples
    --------
    >>> import json, tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    ...     json.dump({"type": "Scheduler", "address": "tcp://10.0.0.5:8786"}, f)
    >>> scheduler_from_file(f.name)
    'tcp://10.0.0.5:8786'
    """
    import json
    import os

    try:
        with open(os.fspath(path)) as handle:
            address = json.load(handle).get("address")
    except FileNotFoundError:
        raise UsageError(f"scheduler file {os.fspath(path)!r} does not exist: start the scheduler with "
                         f"'dask scheduler --scheduler-file {os.fspath(path)}' first") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise UsageError(f"scheduler file {os.fspath(path)!r} is not a Dask scheduler file (JSON with an "
                         f"\"address\"): {first_line(exc, type(exc).__name__)}") from None
    if not isinstance(address, str) or not address.startswith(ADDRESS_PREFIXES):
        raise UsageError(f"scheduler file {os.fspath(path)!r} holds no scheduler address (got {address!r})")
    _check_address(address)
    return address


def resolve_default(scheduler):
    """``scheduler``, or for ``None`` what Dask would use: ``dask.config``'s ``scheduler``, then the
    active ``distributed.Client``; ``None`` means local threads.  ``"distributed"`` is the active client."""
    if scheduler is None and "dask" in sys.modules:
        import dask

        scheduler = dask.config.get("scheduler", None)
    if scheduler is None:
        return _active_client()
    if isinstance(scheduler, str) and scheduler.lower() in ("distributed", "dask.distributed"):
        client = _active_client()
        if client is None:
            raise UsageError("scheduler 'distributed' asks for the active distributed.Client, and there is none: "
                             "create one (distributed.Client(address)) or give the address")
        return client
    return scheduler


def _is_executor(obj) -> bool:
    from concurrent.futures import Executor

    return isinstance(obj, Executor)


def _active_client():
    """The current distributed.Client, if distributed is loaded and one is active."""
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def _is_client(obj) -> bool:
    return type(obj).__name__ == "Client" and type(obj).__module__.startswith("distributed")
