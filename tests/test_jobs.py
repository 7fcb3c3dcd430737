"""jobs/: the cron wrapper runs for real; Kubernetes manifests are validated against the API's models
(no control plane here: tests/kubernetes_models.py walks them with the official client's classes)
and embed a valid config."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from helpers import write_parquet
from kubernetes_models import _check, check_manifest

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
    # exit codes a retry cannot fix fail the Job at once (a retry after a failed gate records the run twice)
    job = spec["jobTemplate"]["spec"]
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it
    rules = job["podFailurePolicy"]["rules"]
    fail = next(r for r in rules if r["action"] == "FailJob")["onExitCodes"]
    assert fail["containerName"] == container["name"] and fail["operator"] == "In"
    from l1stream import errors

    assert set(fail["values"]) == {errors.EXIT_INTERNAL, errors.EXIT_USAGE, errors.EXIT_DATA, errors.EXIT_GATE,
                                   errors.EXIT_SKIPPED, errors.EXIT_OUTPUT}
    assert errors.EXIT_CLUSTER not in fail["values"] and job["backoffLimit"] >= 1  # an unreachable cluster retries
    assert {"type": "DisruptionTarget"} in next(r for r in rules if r["action"] == "Ignore")["onPodConditions"]


def test_manifests_match_the_kubernetes_api():
    """Every key a field of its object and every value of its type, by the official client's models."""
    for document in load_all("kubernetes", "cronjob.yaml"):
        check_manifest(document)
    (job,) = load_all("kubernetes", "daskjob.yaml")  # a CRD: its pod specs are core PodSpecs
    spec = job["spec"]
    for where, pod in (("job", spec["job"]["spec"]), ("scheduler", spec["cluster"]["spec"]["scheduler"]["spec"]),
                       ("worker", spec["cluster"]["spec"]["worker"]["spec"])):
        _check(pod, "V1PodSpec", f"DaskJob {where}")


def test_the_manifest_check_catches_what_the_api_would_refuse():
    cron = next(d for d in load_all("kubernetes", "cronjob.yaml") if d["kind"] == "CronJob")
    job = cron["spec"]["jobTemplate"]["spec"]
    job["podFailurePolicies"] = job.pop("podFailurePolicy")
    with pytest.raises(AssertionError, match=r"jobTemplate.spec.podFailurePolicies: not a field of V1JobSpec"):
        check_manifest(cron)
    job["podFailurePolicy"] = job.pop("podFailurePolicies")
    job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] = ["4"]
    with pytest.raises(AssertionError, match=r"onExitCodes.values\[0\]: int was expected, got '4'"):
        check_manifest(cron)
    job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] = [4]
    del job["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(AssertionError, match=r"containers\[0\]: Invalid value for `name`, must not be `None`"):
        check_manifest(cron)


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
    # each worker binds to its own node: the hostname is evaluated inside the task srun starts
    worker = text[text.index("srun "):text.index("workers_pid=")]
    assert "bash -c 'exec dask worker" in worker and '--host "$(hostname)"' in worker
    assert '--host "$host"' not in worker


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
