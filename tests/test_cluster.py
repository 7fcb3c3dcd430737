"""A real Dask cluster started from the command line, a worker killed mid-job, and S3 on loopback."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
from helpers import Oracle, assert_exact, write_parquet
from services import need_module, start, start_moto, stop, wait_for

import l1stream

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """40 files x 50,000 rows in date=/model= partitions, plus its exact answer (helpers.Oracle: integer
    sums, never l1stream's own run)."""
    rng = np.random.default_rng(99)
    root = tmp_path_factory.mktemp("cluster-data")
    truth = {}
    for i in range(40):
        model = "v1" if i % 2 else "v2"
        a = rng.lognormal(12, 0.6, 50_000)
        p = a * rng.lognormal(0, 0.1, 50_000)
        write_parquet(root / f"date=2026-11-{1 + i // 2:02d}" / f"model={model}" / "part-0.parquet", 10_000,
                      actual=a, prediction=p)
        truth.setdefault((model,), []).append((a, p))
    return root, Oracle(truth)


SCHEDULER_FILES = {}  # address -> the file the scheduler wrote (--scheduler-file)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """`python -m dask scheduler` + two `dask worker` processes on 127.0.0.1 (port 0, dashboards on port 0)."""
    from distributed import Client

    base = tmp_path_factory.mktemp("dask")
    scheduler_file = base / "scheduler.json"
    procs = [start([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                    "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
                   log_path=base / "scheduler.log")]
    try:
        wait_for(lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0, 60, "the scheduler",
                 base / "scheduler.log")
        address = json.loads(scheduler_file.read_text())["address"]
        for i in range(2):
            procs.append(start([sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1",
                                "--nthreads", "1", "--dashboard-address", "127.0.0.1:0",
                                "--local-directory", str(base / f"w{i}"),
                                "--death-timeout", "30", "--name", f"worker-{i}"],
                               log_path=base / f"worker-{i}.log"))
        with Client(address) as client:
            client.wait_for_workers(2, timeout=60)
        SCHEDULER_FILES[address] = scheduler_file
        yield address
    finally:
        for proc in reversed(procs):
            stop(proc)


def test_same_bits_on_the_cluster_by_address(dataset, dask_cluster):
    root, local = dataset
    remote = l1stream.evaluate(str(root), by="model", scheduler=dask_cluster, task_bytes=1 << 20)
    assert_exact(remote, local)
    assert remote.count == 2_000_000
    assert remote.scheduler == f"distributed:{dask_cluster}"


def test_cli_against_the_cluster(dataset, dask_cluster, capsys):
    from l1stream.cli.commands import main

    root, local = dataset
    assert main(["mae", str(root), "--scheduler", dask_cluster, "--json", "--filter", "model==v1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mae"] == local.groups[("v1",)][0]


def test_scheduler_file_as_dask_writes_it(dataset, dask_cluster, capsys):
    """The file `dask scheduler --scheduler-file` wrote (as the SLURM script's scheduler does)."""
    from l1stream.cli.commands import main

    root, local = dataset
    scheduler_file = SCHEDULER_FILES[dask_cluster]
    remote = l1stream.evaluate(str(root), by="model", scheduler_file=scheduler_file, task_bytes=1 << 20)
    assert_exact(remote, local)
    assert remote.scheduler == f"distributed:{dask_cluster}"
    assert main(["mae", str(root), "--scheduler-file", str(scheduler_file), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mae"] == local.mae and doc["scheduler"] == f"distributed:{dask_cluster}"


def _kill_inside_a_scan_task(marker: str):
    """A worker plugin that SIGKILLs its own worker while a scan task is running on it, once per cluster.

    Defined in a function so that cloudpickle ships it by value (the workers cannot import this module).
    A watcher thread looks at the worker's executing tasks every half millisecond and kills the process
    the moment a scan task is among them (its function is running in the worker's thread pool);
    ``marker`` (created with O_EXCL: one kill across workers) records which task and worker."""
    from distributed import WorkerPlugin

    class KillInsideScanTask(WorkerPlugin):
        name = "l1stream-test-kill-inside-scan-task"

        def setup(self, worker):
            def watch():
                while not os.path.exists(marker):
                    try:
                        running = [str(task.key) for task in list(worker.state.executing)]
                    except RuntimeError:  # the set changed while copied: look again
                        continue
                    scans = [key for key in running if "l1stream-scan-" in key and "merge" not in key]
                    if scans:
                        try:
                            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                        except FileExistsError:
                            return
                        os.write(fd, json.dumps({"key": scans[0], "worker": worker.address}).encode())
                        os.close(fd)
                        os.kill(os.getpid(), signal.SIGKILL)
                    time.sleep(0.0005)

            threading.Thread(target=watch, daemon=True).start()

    return KillInsideScanTask()


def test_a_worker_killed_inside_a_running_scan_task(dataset, dask_cluster, tmp_path):
    """SIGKILL a worker from inside a scan task it is running: that task runs again on the other
    worker, the job completes with the exact bits, every file read once."""
    from distributed import Client, get_task_stream

    root, oracle = dataset
    marker = str(tmp_path / "killed.json")
    with Client(dask_cluster) as client:
        client.wait_for_workers(2, timeout=60)
        client.register_plugin(_kill_inside_a_scan_task(marker))
        try:
            with get_task_stream(client=client) as stream:  # the scheduler records every task's worker
                result = l1stream.evaluate(str(root), by="model", scheduler=dask_cluster, task_bytes=200_000,
                                           chunk_rows=2_000)
        finally:
            client.unregister_worker_plugin(_kill_inside_a_scan_task(marker).name)
        client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker for later tests
    assert os.path.exists(marker), "no worker was killed inside a scan task"
    killed = json.loads(open(marker).read())
    finished_by = {entry["worker"] for entry in stream.data if str(entry["key"]) == killed["key"]}
    # the task ran (again) on another worker; the killed one may also have reported it finished in the
    # instant between the watcher's look and the kill, its result then lost with the process
    assert finished_by - {killed["worker"]}, (killed, finished_by)
    assert_exact(result, oracle)
    assert result.count == 2_000_000
    for path, report in result.file_reports.items():
        assert report.rows_read == 50_000 and report.row_groups == 5, path


def test_local_cluster_spec(dataset):
    root, local = dataset
    result = l1stream.evaluate(str(root), cluster={"kind": "local", "workers": 2,
                                                   "options": {"threads_per_worker": 1, "processes": True}})
    assert result.mae == local.mae and result.scheduler.startswith("distributed:tcp://127.0.0.1:")


def test_cluster_is_not_started_when_validation_fails(dataset):
    root, _ = dataset
    with pytest.raises(l1stream.UsageError, match="nosuch"):
        l1stream.evaluate(str(root), filters="nosuch==1",
                          cluster={"kind": "slurm", "workers": 1, "options": {"queue": "none"}})


# --- S3 on loopback ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    need_module("s3fs")
    base = tmp_path_factory.mktemp("moto")
    proc, endpoint = start_moto(base / "moto.log")
    try:
        options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        import s3fs

        fs = s3fs.S3FileSystem(**options)
        fs.mkdir("l1stream-test")
        yield fs, options
    finally:
        stop(proc)


def test_s3_dataset_from_client_and_workers_with_outputs_back(dataset, dask_cluster, s3, tmp_path, capsys):
    from l1stream.cli.commands import main
    from l1stream.outputs.losses import write_losses

    root, local = dataset
    fs, options = s3
    for base, _, names in os.walk(root):
        for name in names:
            path = os.path.join(base, name)
            fs.put_file(path, "l1stream-test/logs/" + os.path.relpath(path, root))
    fs.pipe("l1stream-test/logs/_SUCCESS", b"")
    url = "s3://l1stream-test/logs/"
    client_side = l1stream.evaluate(url, by="model", storage_options=options)
    assert_exact(client_side, local)
    assert client_side.ignored == 1
    on_workers = l1stream.evaluate(url, by="model", storage_options=options, scheduler=dask_cluster)
    assert_exact(on_workers, local)
    args = ["mae", url, "--by", "model", "--output", "s3://l1stream-test/results/mae.json", "--json"]
    args += [f"--storage-option={k}={v}" for k, v in options.items()]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(fs.cat("l1stream-test/results/mae.json")) == printed
    config = tmp_path / "s3.yaml"  # a config run writes its JSON back with the config's storage options
    config.write_text(f"sources: [{url}]\nstorage_options: {json.dumps(options)}\n"
                      f"output: {{json: s3://l1stream-test/results/run.json}}\n")
    assert main(["run", str(config), "--quiet"]) == 0
    assert json.loads(fs.cat("l1stream-test/results/run.json"))["mae"] == local.mae
    capsys.readouterr()
    summary = write_losses(url, "s3://l1stream-test/losses", storage_options=options, scheduler=dask_cluster,
                           filters="model==v2")
    assert summary["rows"] == 1_000_000
    assert fs.exists("l1stream-test/losses/_SUCCESS")
    assert not [p for p in fs.find("l1stream-test/losses") if "staging" in p]


def test_report_from_object_storage_on_the_cluster(dask_cluster, s3, tmp_path, rng):
    """The report's extra passes run on the workers against S3; same numbers as in-process; HTML back to S3."""
    fs, options = s3
    for day in ("2026-11-01", "2026-11-02"):
        a = np.round(rng.lognormal(10, 0.5, 3000), 2)
        p = np.round(a * rng.normal(1, 0.2, 3000), 2)
        local = write_parquet(tmp_path / "logs" / f"date={day}" / "part-0.parquet", 500, actual=a, prediction=p)
        fs.put_file(local, f"l1stream-test/report-logs/date={day}/part-0.parquet")
    here = l1stream.evaluate_report(str(tmp_path / "logs"), scheduler="synchronous").to_dict()["report"]
    remote = l1stream.evaluate_report("s3://l1stream-test/report-logs/", storage_options=options,
                                      scheduler=dask_cluster)
    got = remote.to_dict()["report"]
    for key in ("mse", "rmse", "top_share", "quantiles", "histogram", "time_series"):
        assert got[key] == here[key]
    assert got["slices"][0]["interval"]["blocks"] == 12  # 2 files x 6 row groups
    remote.write_html("s3://l1stream-test/results/report.html", options)
    assert fs.cat("l1stream-test/results/report.html").decode().count("<svg") == 2


@pytest.mark.parametrize("spec, words", [
    ({"kind": "yarn"}, "cluster.kind must be one of"),
    ({"kind": "local", "options": {"cores": 4}}, "unknown option(s) ['cores'] for kind 'local'"),
    ({"kind": "slurm", "workers": 0}, "cluster.workers must be a positive integer"),
    ({"kind": "address"}, "cluster.options.address is required"),
    ({"kind": "local", "nodes": 3}, "unknown key(s) ['nodes']"),
])
def test_cluster_specs_are_validated(spec, words):
    from l1stream.engine.clusters import validate_cluster

    with pytest.raises(l1stream.UsageError) as info:
        validate_cluster(spec)
    assert words in str(info.value)


def test_missing_cluster_package_says_what_to_install(dataset, monkeypatch):
    root, _ = dataset
    monkeypatch.setitem(sys.modules, "dask_gateway", None)  # as where it is not installed: import fails
    with pytest.raises(l1stream.UsageError, match=r'pip install "l1stream\[gateway\]"'):
        l1stream.evaluate(str(root), cluster={"kind": "gateway", "options": {"address": "http://127.0.0.1:9"}})


def test_config_cluster_section(dataset, tmp_path, capsys):
    from l1stream.cli.commands import main

    root, local = dataset
    config = tmp_path / "c.yaml"
    config.write_text(f"sources: [{root}]\ncluster: {{kind: local, workers: 2, options: {{processes: false}}}}\n")
    assert main(["run", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mae"] == local.mae
    config.write_text(f"sources: [{root}]\ncluster: {{kind: local, options: {{gpus: 1}}}}\n")
    assert main(["run", str(config)]) == 2
    assert "gpus" in capsys.readouterr().err


def test_unreachable_scheduler_is_a_cluster_error(tmp_path, capsys):
    import dask

    from l1stream.cli.commands import main

    path = write_parquet(tmp_path / "p.parquet", actual=[1.0], prediction=[2.0])
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        code = main(["mae", path, "--scheduler", "tcp://127.0.0.1:9", "--json"])
    out, err = capsys.readouterr()
    assert code == 6 and json.loads(out)["error"]["type"] == "cluster_error" and "127.0.0.1:9" in err
