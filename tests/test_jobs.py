"""jobs/: the cron wrapper runs for real; Kubernetes manifests are validated structurally
(no control plane here: the manifests parse, carry the required fields, and embed a valid config)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys

import yaml
from helpers import write_parquet

from l1stream.scheduled.config import validate_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOBS = os.path.join(REPO, "jobs")


def load_all(*parts):
    with open(os.path.join(JOBS, *parts)) as handle:
        return [d for d in yaml.safe_load_all(handle) if d]


def containers(pod_spec):
    assert pod_spec["containers"], pod_spec
    for c in pod_spec["containers"]:
        assert c["name"] and c["image"]
    return pod_spec["containers"]


def test_cronjob_manifest():
    docs = {d["kind"]: d for d in load_all("kubernetes", "cronjob.yaml")}
    cron = docs["CronJob"]
    assert cron["apiVersion"] == "batch/v1"
    spec = cron["spec"]
    assert len(spec["schedule"].split()) == 5 and spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    (container,) = containers(pod)
    assert container["command"][:3] == ["l1stream", "run", "/config/nightly.yaml"]
    mount = container["volumeMounts"][0]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    config_map = docs["ConfigMap"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    config = validate_config(yaml.safe_load(config_map["data"]["nightly.yaml"]))
    assert config["sources"][0]["path"].startswith("s3://")
    assert any("scheduler=tcp://" in a for a in container["args"])


def test_daskjob_manifest():
    (job,) = load_all("kubernetes", "daskjob.yaml")
    assert job["apiVersion"] == "kubernetes.dask.org/v1" and job["kind"] == "DaskJob"
    (runner,) = containers(job["spec"]["job"]["spec"])
    assert "$DASK_SCHEDULER_ADDRESS" in " ".join(runner["args"]) and "l1stream mae" in " ".join(runner["args"])
    cluster = job["spec"]["cluster"]["spec"]
    assert isinstance(cluster["worker"]["replicas"], int) and cluster["worker"]["replicas"] >= 1
    assert containers(cluster["worker"]["spec"])[0]["args"][:2] == ["dask", "worker"]
    assert containers(cluster["scheduler"]["spec"])[0]["args"] == ["dask", "scheduler"]
    ports = {p["port"] for p in cluster["scheduler"]["service"]["ports"]}
    assert 8786 in ports


def test_slurm_jobqueue_config_validates():
    with open(os.path.join(JOBS, "slurm", "jobqueue.yaml")) as handle:
        config = validate_config(yaml.safe_load(handle))
    assert config["cluster"]["kind"] == "slurm" and config["cluster"]["options"]["walltime"]


def test_nightly_config_validates():
    with open(os.path.join(JOBS, "cron", "nightly.yaml")) as handle:
        config = validate_config(yaml.safe_load(handle))
    assert config["store"] and config["history"] and config["gates"]
    assert config["filters"] == ["date>=today-30d"]


def test_sbatch_directives_are_well_formed():
    text = open(os.path.join(JOBS, "slurm", "evaluate.sbatch")).read()
    directives = re.findall(r"^#SBATCH (\S+)", text, re.M)
    assert "--ntasks=2" in directives and all(d.startswith("--") for d in directives)
    assert subprocess.run(["bash", "-n", os.path.join(JOBS, "slurm", "evaluate.sbatch")]).returncode == 0


def _wrapper(tmp_path, config, extra_env=None):
    env = {**os.environ, "L1STREAM_LOG_DIR": str(tmp_path / "logs"), "L1STREAM_LOCK": str(tmp_path / "job.lock"),
           "L1STREAM": f"{sys.executable} -m l1stream", **(extra_env or {})}
    return subprocess.run([os.path.join(JOBS, "cron", "l1stream-cron.sh"), str(config)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cron_wrapper_runs_logs_and_passes_exit_codes(tmp_path):
    data = write_parquet(tmp_path / "d" / "p.parquet", actual=[1.0, 2.0], prediction=[2.0, 4.0])
    config = tmp_path / "nightly.yaml"
    config.write_text(f"sources: [{data}]\n")
    proc = _wrapper(tmp_path, config)
    assert proc.returncode == 0, proc.stderr
    results = sorted((tmp_path / "logs").glob("nightly-*.json"))
    assert json.loads(results[0].read_text())["mae"] == 1.5
    log = next((tmp_path / "logs").glob("nightly-*.log")).read_text()
    assert "start" in log and "exit 0" in log
    config.write_text(f"sources: [{tmp_path / 'missing'}]\n")
    assert _wrapper(tmp_path, config).returncode == 3


def test_cron_wrapper_never_runs_twice_at_once(tmp_path):
    config = tmp_path / "nightly.yaml"
    config.write_text("sources: [nowhere]\n")
    with open(tmp_path / "job.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = _wrapper(tmp_path, config)
    assert proc.returncode == 75 and "already running" in proc.stderr
