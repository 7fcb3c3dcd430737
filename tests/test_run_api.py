"""l1stream.run: a scheduled run from Python (Airflow, Prefect, Dagster), exactly as `l1stream run`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import exact_mae, write_parquet

import l1stream
from l1stream.cli.commands import main
from l1stream.outputs.history import read as read_history


@pytest.fixture
def logs(tmp_path):
    rng = np.random.default_rng(3)
    a = np.round(rng.lognormal(12, 0.5, 3000), 2)
    p = np.round(a * rng.lognormal(0, 0.1, 3000), 2)
    model = np.where(np.arange(3000) % 3 == 0, "v1", "v2")
    write_parquet(tmp_path / "logs" / "part-0.parquet", 1000, actual=a, prediction=p, model=model)
    return tmp_path, a, p, model


def config_for(tmp_path, threshold):
    return {"sources": [str(tmp_path / "logs")], "by": ["model"], "history": str(tmp_path / "history"),
            "gates": [{"max_mae": threshold}], "output": {"json": str(tmp_path / "out" / "mae.json")}}


def test_run_returns_the_result_and_writes_what_the_cli_writes(logs, capsys):
    tmp_path, a, p, model = logs
    result = l1stream.run(config_for(tmp_path, 1e12))
    assert result.mae == exact_mae(a, p)
    assert [g["status"] for g in result.gates] == ["passed"]
    written = json.loads((tmp_path / "out" / "mae.json").read_text())
    assert written["mae"] == exact_mae(a, p) and written["gates"] == result.gates
    # the CLI on the same config file writes the same document and the same kind of history record
    (tmp_path / "job.json").write_text(json.dumps(config_for(tmp_path, 1e12)))
    config_file = tmp_path / "job.yaml"
    config_file.write_text((tmp_path / "job.json").read_text())  # JSON is YAML
    assert main(["run", str(config_file), "--json"]) == 0
    cli_doc = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in cli_doc.items() if k != "elapsed_seconds"} == \
        {k: v for k, v in written.items() if k != "elapsed_seconds"}
    runs = {r["run_id"] for r in read_history(str(tmp_path / "history"))}
    assert len(runs) == 2


def test_a_failed_gate_raises_after_writing_and_recording(logs):
    tmp_path, a, p, model = logs
    v1 = exact_mae(a[model == "v1"], p[model == "v1"])
    with pytest.raises(l1stream.GateFailedError, match=r"quality gate failed: max_mae: MAE .*threshold 1.0") as caught:
        l1stream.run(config_for(tmp_path, 1.0), overrides=["gates[0].slices=true"])
    error = caught.value
    assert error.exit_code == 4 and error.result.mae == exact_mae(a, p)
    assert {json.dumps(c["slice"]) for c in error.checks} == {"null", '{"model": "v1"}', '{"model": "v2"}'}
    assert next(c for c in error.checks if c["slice"] == {"model": "v1"})["value"] == v1
    assert json.loads((tmp_path / "out" / "mae.json").read_text())["mae"] == exact_mae(a, p)
    records = read_history(str(tmp_path / "history"))
    assert records and {r["gates_passed"] for r in records} == {False}


def test_overrides_as_a_mapping_and_a_config_file(logs, tmp_path):
    tmp_path, a, p, model = logs
    config = tmp_path / "job.yaml"
    config.write_text(f"sources: [{tmp_path / 'logs'}]\n")
    assert l1stream.run(config).mae == exact_mae(a, p)
    result = l1stream.run(str(config), {"filters": ["model==v1"], "by": ["model"]})
    assert result.mae == exact_mae(a[model == "v1"], p[model == "v1"]) and result.by == ("model",)


def test_bad_configs_are_usage_errors(logs):
    tmp_path = logs[0]
    with pytest.raises(l1stream.UsageError, match=r"a config file path or a dict shaped like one; got list"):
        l1stream.run([str(tmp_path / "logs")])
    with pytest.raises(l1stream.ConfigError, match=r"nan_polcy"):
        l1stream.run({"sources": [str(tmp_path / "logs")], "nan_polcy": "omit"})
