"""MLflow output, against a real local tracking store (sqlite, as `mlflow server` would use): the
runs are read back with MLflow's own client and every metric compared with the exact oracle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import exact_mae, write_parquet
from mlflow.tracking import MlflowClient  # a test dependency ([test] extra): never skipped

import l1stream
from l1stream.cli.commands import main
from l1stream.errors import OutputError, UsageError


@pytest.fixture
def logs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a sqlite store keeps artifacts in ./mlruns: here, never in the checkout
    rng = np.random.default_rng(4)
    a = np.round(rng.lognormal(10, 1, 2000), 2)
    p = np.round(a * rng.lognormal(0, 0.1, 2000), 2)
    model = np.where(np.arange(2000) % 4 == 0, "v1", "v2/beta")  # a slash: kept, MLflow allows it
    path = write_parquet(tmp_path / "logs" / "p.parquet", actual=a, prediction=p, model=model)
    return path, a, p, model


def runs(uri, experiment):
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id]) if found else []


def test_cli_logs_metrics_params_and_artifacts(logs, tmp_path, capsys):
    path, a, p, model = logs
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["report", path, "--by", "model", "--html", str(tmp_path / "report.html"), "--mlflow-experiment",
                 "house-prices", "--mlflow-tracking-uri", uri, "--mlflow-run-name", "nightly", "--json"])
    err = capsys.readouterr().err
    assert code == 0, err
    client, found = runs(uri, "house-prices")
    (run,) = found
    assert f"l1stream: logged MLflow run {run.info.run_id} in experiment 'house-prices'" in err
    metrics = run.data.metrics
    assert metrics["mae"] == exact_mae(a, p) and metrics["count"] == 2000 and metrics["left_out.nan"] == 0
    assert metrics["mae/model:v1"] == exact_mae(a[model == "v1"], p[model == "v1"])
    assert metrics["mae/model:v2/beta"] == exact_mae(a[model == "v2/beta"], p[model == "v2/beta"])
    assert metrics["count/model:v1"] == 500
    assert run.info.run_name == "nightly" and run.info.status == "FINISHED"
    assert run.data.params["by"] == "model" and run.data.params["actual"] == "actual"
    names = {f.path for f in client.list_artifacts(run.info.run_id, "l1stream")}
    assert names == {"l1stream/result.json", "l1stream/report.html"}
    document = json.loads(open(client.download_artifacts(run.info.run_id, "l1stream/result.json")).read())
    assert document["mae"] == exact_mae(a, p) and "report" in document


def test_config_output_mlflow_with_a_failed_gate(logs, tmp_path, capsys):
    path, a, p, _ = logs
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "job.yaml"
    config.write_text(json.dumps({"sources": [path], "gates": [{"max_mae": 1.0}],
                                  "output": {"mlflow": {"tracking_uri": uri, "experiment": "nightly"}}}))
    assert main(["run", str(config), "--quiet"]) == 4
    capsys.readouterr()
    _, (run,) = runs(uri, "nightly")
    assert run.data.metrics["mae"] == exact_mae(a, p) and run.data.tags["l1stream.gates_passed"] == "false"
    with pytest.raises(l1stream.GateFailedError):  # the Python entry point logs the same way
        l1stream.run(str(config))
    _, found = runs(uri, "nightly")
    assert len(found) == 2


def test_an_unreachable_store_is_an_output_error_and_nothing_is_recorded(logs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own retries take minutes
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    path = logs[0]
    history = tmp_path / "history"
    code = main(["mae", path, "--history", str(history), "--mlflow-experiment", "x",
                 "--mlflow-tracking-uri", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 7 and "could not log the run to MLflow at http://127.0.0.1:9 (experiment 'x')" in err
    assert not history.exists()


def test_flags_without_an_experiment(logs, capsys):
    assert main(["mae", logs[0], "--mlflow-tracking-uri", "sqlite:///x.db"]) == 2
    assert "--mlflow-tracking-uri and --mlflow-run-name need --mlflow-experiment NAME" in capsys.readouterr().err


def test_slice_values_that_collide_once_made_safe(tmp_path):
    from l1stream.outputs.mlflow_run import result_metrics

    path = write_parquet(tmp_path / "p.parquet", actual=[1.0, 2.0], prediction=[0.0, 0.0], model=["a=b", "a?b"])
    with pytest.raises(UsageError, match=r"two slices give the MLflow metric 'mae/model:a_b'"):
        result_metrics(l1stream.evaluate(path, by="model"))
    assert OutputError.exit_code == 7
