"""Start (or reach) a Dask distributed cluster for one run, and tear it down after.

A cluster spec is a small dict, the same in the API (``evaluate(..., cluster=...)``),
the CLI (``--cluster KIND --cluster-option KEY=VALUE``) and config files
(``cluster:``)::

    {"kind": "local", "workers": 2, "options": {"threads_per_worker": 1, "memory_limit": "2GiB"}}
    {"kind": "slurm", "workers": 4, "options": {"queue": "normal", "account": "ml", "cores": 8,
                                                "memory": "32GiB", "walltime": "01:00:00",
                                                "job_extra_directives": ["--exclusive"]}}
    {"kind": "kubernetes", "workers": 8, "options": {"name": "l1stream", "image": "ghcr.io/org/l1stream:0.1"}}
    {"kind": "gateway", "workers": 8, "options": {"address": "https://gateway.example", "cluster_options": {}}}
    {"kind": "address", "options": {"address": "tcp://scheduler:8786"}}

``workers`` is how many worker *jobs/pods/processes* to start; the run waits up to
``wait_timeout`` seconds for the first of them.  The answer does not depend on the
cluster: workers return exact partial states.
"""

from __future__ import annotations

import contextlib

from l1stream.errors import ClusterError, UsageError

KINDS = {
    "address": {"address"},
    "local": {"threads_per_worker", "processes", "memory_limit", "host", "dashboard_address",
              "local_directory"},
    "slurm": {"queue", "account", "cores", "processes", "memory", "walltime", "job_extra_directives",
              "job_script_prologue", "interface", "local_directory", "log_directory", "python",
              "worker_extra_args", "scheduler_options", "job_name", "death_timeout"},
    "kubernetes": {"name", "image", "namespace", "resources", "env", "worker_command", "n_workers"},
    "gateway": {"address", "proxy_address", "auth", "cluster_options"},
}
SPEC_KEYS = {"kind", "workers", "wait_timeout", "options"}
EXTRAS = {"slurm": ("dask_jobqueue", "l1stream[slurm]"),
          "kubernetes": ("dask_kubernetes", "l1stream[kubernetes]"),
          "gateway": ("dask_gateway", "l1stream[gateway]")}


def validate_cluster(spec) -> dict | None:
    """Check a cluster spec; return it normalised (``None`` stays ``None``)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, dict):
        raise UsageError(f"cluster must be a mapping like {{'kind': 'local', 'workers': 2}}; got {spec!r}")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise UsageError(f"cluster: unknown key(s) {sorted(unknown)}; allowed: {sorted(SPEC_KEYS)}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise UsageError(f"cluster.kind must be one of {', '.join(KINDS)}; got {kind!r}")
    options = dict(spec.get("options") or {})
    bad = set(options) - KINDS[kind]
    if bad:
        raise UsageError(f"cluster.options: unknown option(s) {sorted(bad)} for kind {kind!r}; "
                         f"allowed: {', '.join(sorted(KINDS[kind]))}")
    workers = spec.get("workers", 1 if kind != "address" else None)
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise UsageError(f"cluster.workers must be a positive integer; got {workers!r}")
    timeout = spec.get("wait_timeout", 300)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise UsageError(f"cluster.wait_timeout must be a positive number of seconds; got {timeout!r}")
    if kind in ("address", "gateway") and "address" not in options:
        raise UsageError(f"cluster.options.address is required for kind {kind!r}")
    return {"kind": kind, "workers": workers, "wait_timeout": timeout, "options": options}


@contextlib.contextmanager
def cluster_client(spec: dict):
    """Yield a ``distributed.Client`` on the cluster described by ``spec``; close everything after."""
    from distributed import Client

    kind, options, workers = spec["kind"], dict(spec["options"]), spec["workers"]
    if kind == "address":
        try:
            client = Client(options["address"], timeout=spec["wait_timeout"])
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {options['address']}: {exc}") from exc
        with client:
            yield client
        return
    _require(kind)
    try:
        cluster = _start(kind, options, workers)
    except Exception as exc:
        raise ClusterError(f"the {kind} cluster could not be started: {exc} (options: {options})") from exc
    try:
        with Client(cluster) as client:
            if kind != "local":
                client.wait_for_workers(1, timeout=spec["wait_timeout"])
            yield client
    finally:
        cluster.close()


def _start(kind: str, options: dict, workers: int):
    if kind == "local":
        from distributed import LocalCluster

        if options.get("processes", True):
            options.setdefault("host", "127.0.0.1")  # in-process clusters use inproc:// instead
        options.setdefault("dashboard_address", "127.0.0.1:0")
        return LocalCluster(n_workers=workers, **options)
    if kind == "slurm":
        from dask_jobqueue import SLURMCluster

        options.setdefault("cores", 1)
        options.setdefault("memory", "4GiB")
        cluster = SLURMCluster(**options)
        cluster.scale(jobs=workers)
        return cluster
    if kind == "kubernetes":
        from dask_kubernetes.operator import KubeCluster

        options.setdefault("n_workers", workers)
        return KubeCluster(**options)
    from dask_gateway import Gateway

    gateway = Gateway(options["address"], proxy_address=options.get("proxy_address"), auth=options.get("auth"))
    cluster = gateway.new_cluster(**(options.get("cluster_options") or {}))
    cluster.scale(workers)
    return cluster


def _require(kind: str) -> None:
    if kind not in EXTRAS:
        return
    module, package = EXTRAS[kind]
    try:
        __import__(module)
    except ImportError as exc:
        raise UsageError(f"cluster kind {kind!r} needs the {module} package: pip install \"{package}\"") from exc
