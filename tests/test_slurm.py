"""A real single-node SLURM (munged + slurmctld + slurmd, no systemd), started and stopped here.

dask-jobqueue submits a worker job that evaluates a dataset with the local bits, and the sbatch
script in jobs/slurm/ runs to completion under sbatch.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from helpers import Oracle, assert_exact, write_parquet
from services import need, need_module, start, stop, wait_for

import l1stream

pytestmark = pytest.mark.cluster
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_tool(argv, env, timeout=20):
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def slurm():
    """A world-traversable work directory (munged insists), a munge key, the three daemons."""
    for tool in ("munged", "slurmctld", "slurmd", "sbatch", "sinfo"):
        need(shutil.which(tool) is not None, f"{tool} not installed (apt-get install slurm-wlm munge)")
    need(os.geteuid() == 0, "the single-node SLURM fixture runs its daemons as root")
    need(os.path.exists("/etc/munge/munge.key"), "no /etc/munge/munge.key")
    base = tempfile.mkdtemp(prefix="l1stream-slurm-")
    os.chmod(base, 0o755)
    for sub in ("munge", "state", "spool", "jobs"):
        os.makedirs(os.path.join(base, sub), mode=0o755)
    key = os.path.join(base, "munge", "munge.key")
    shutil.copyfile("/etc/munge/munge.key", key)
    os.chmod(key, 0o400)
    socket_path = os.path.join(base, "munge", "munge.socket")
    conf = os.path.join(base, "slurm.conf")
    with open(conf, "w") as handle:
        handle.write(f"""ClusterName=l1stream
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
    env = {**os.environ, "SLURM_CONF": conf}
    procs = []
    try:
        procs.append(start(["munged", "-F", "--force", f"--key-file={key}", f"--socket={socket_path}",
                            f"--pid-file={base}/munge/munged.pid", f"--log-file={base}/munge/munged.log",
                            f"--seed-file={base}/munge/munged.seed"], log_path=f"{base}/munged.out"))
        wait_for(lambda: os.path.exists(socket_path), 30, "munged's socket", f"{base}/munged.out")
        procs.append(start(["slurmctld", "-D", "-i", "-f", conf], log_path=f"{base}/slurmctld.out", env=env))
        procs.append(start(["slurmd", "-D", "-N", "localhost", "-f", conf], log_path=f"{base}/slurmd.out", env=env))

        def idle():
            try:
                out = run_tool(["sinfo", "-h", "-o", "%t"], env, timeout=5).stdout.strip()
            except subprocess.TimeoutExpired:
                return False
            return out == "idle"

        wait_for(idle, 60, "the SLURM node to be idle", f"{base}/slurmctld.log")
        os.environ["SLURM_CONF"] = conf  # dask-jobqueue calls sbatch/squeue/scancel
        yield {"base": base, "env": env}
    finally:
        os.environ.pop("SLURM_CONF", None)
        run_tool(["scancel", "--user", "root"], env) if procs else None
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def small_dataset(slurm):
    rng = np.random.default_rng(5)
    root = os.path.join(slurm["base"], "data")
    slices = {}
    for m in ("a", "b"):
        a = rng.lognormal(10, 1, 30_000)
        p = a * rng.lognormal(0, 0.2, 30_000)
        write_parquet(os.path.join(root, f"model={m}", "part-0.parquet"), 5000, actual=a, prediction=p)
        slices[(m,)] = [(a, p)]
    os.chmod(root, 0o755)
    return root, Oracle(slices)  # exact integer sums, independent of l1stream


def test_dask_jobqueue_worker_job_matches_local_bits(slurm, small_dataset):
    need_module("dask_jobqueue")
    root, local = small_dataset
    spec = {"kind": "slurm", "workers": 1, "wait_timeout": 120,
            "options": {"queue": "debug", "cores": 1, "processes": 1, "memory": "1GiB", "walltime": "00:05:00",
                        "python": sys.executable, "interface": "lo",
                        "log_directory": os.path.join(slurm["base"], "jobs"),
                        "scheduler_options": {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}}}
    result = l1stream.evaluate(root, by="model", cluster=spec)
    assert_exact(result, local)
    assert result.scheduler.startswith("distributed:tcp://127.0.0.1:")


def test_sbatch_script_runs_to_completion(slurm, small_dataset):
    root, local = small_dataset
    base = slurm["base"]
    config = os.path.join(base, "job.yaml")
    with open(config, "w") as handle:
        handle.write(f"sources: [{root}]\nby: [model]\n")
    workdir = os.path.join(base, "sbatch-run")
    env = {**slurm["env"], "L1STREAM_CONFIG": config, "L1STREAM_WORKDIR": workdir,
           "L1STREAM_SCHEDULER_HOST": "127.0.0.1", "PATH": os.path.dirname(sys.executable) + ":" + os.environ["PATH"]}
    script = os.path.join(REPO, "jobs", "slurm", "evaluate.sbatch")
    submitted = run_tool(["sbatch", "--parsable", f"--chdir={base}", f"--output={base}/sbatch-%j.out", script],
                         env, timeout=30)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]

    def finished():
        out = run_tool(["scontrol", "show", "job", job_id], env, timeout=10).stdout
        state = next((f.split("=", 1)[1] for f in out.split() if f.startswith("JobState=")), "")
        return state if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL") else None

    state = wait_for(finished, 240, f"sbatch job {job_id}", f"{base}/sbatch-{job_id}.out")
    log = open(f"{base}/sbatch-{job_id}.out").read()
    assert state == "COMPLETED", log
    result = json.load(open(os.path.join(workdir, "result.json")))
    assert result["mae"] == local.mae and result["scheduler"].startswith("distributed:tcp://127.0.0.1:")
    assert "exit 0" in log
