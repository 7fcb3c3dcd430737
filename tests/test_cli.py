"""The CLI in-process: exact output, exit codes, config files, overrides, demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from helpers import exact_mae, write_parquet

from l1stream.cli.commands import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_seed_example_with_integer_columns(tmp_path, capsys):
    path = write_parquet(tmp_path / "seed.parquet", actual=pa.array([10, 11, 12, 13], pa.int64()),
                         prediction=pa.array([10, 12, 14, 11], pa.int64()))
    code, out, err = cli(capsys, "mae", path, "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["mae"] == 1.25 and doc["count"] == 4 and doc["rows_read"] == 4
    code, out, _ = cli(capsys, "mae", path)
    assert code == 0 and out.splitlines()[:3] == ["MAE        1.25", "rows used  4", "rows read  4"]


def test_json_by_groups_schema(hive_dataset, capsys):
    root, rows = hive_dataset
    code, out, _ = cli(capsys, "mae", root, "--by", "model", "--by", "segment", "--filter", "date>=2026-11-03",
                       "--json")
    doc = json.loads(out)
    assert code == 0 and doc["by"] == ["model", "segment"] and doc["filters"] == ["date>=2026-11-03"]
    assert [g["key"] for g in doc["groups"]] == [{"model": m, "segment": s} for m in ("v1", "v2") for s in "ab"]
    for group in doc["groups"]:
        a, p, seg = rows[("2026-11-03", group["key"]["model"])]
        keep = seg == group["key"]["segment"]
        assert group["mae"] == exact_mae(a[keep], p[keep]) and group["count"] == int(keep.sum())
    assert set(doc) >= {"mae", "count", "rows_read", "left_out", "files", "groups", "schema_version"}


def test_output_file_and_per_file_reports(hive_dataset, tmp_path, capsys):
    root, _ = hive_dataset
    target = tmp_path / "results" / "mae.json"
    code, out, _ = cli(capsys, "mae", root, "--output", target, "--per-file")
    assert code == 0 and out.startswith("MAE")
    doc = json.loads(target.read_text())
    assert len(doc["file_reports"]) == 6
    assert sum(r["rows_read"] for r in doc["file_reports"].values()) == doc["rows_read"]


def test_weight_option(tmp_path, capsys):
    path = write_parquet(tmp_path / "w.parquet", actual=[1.0, 2.0], prediction=[2.0, 2.0], w=[3.0, 1.0])
    code, out, _ = cli(capsys, "mae", path, "--weight", "w", "--json")
    assert code == 0 and json.loads(out)["mae"] == 0.75 and json.loads(out)["weight_sum"] == 4.0


def test_losses_command(hive_dataset, tmp_path, capsys):
    """Every partition's per-row losses equal numpy's |a - p| of the rows written, in order."""
    import pyarrow.parquet as pq

    root, rows = hive_dataset
    code, out, _ = cli(capsys, "losses", root, "--output", tmp_path / "l", "--json")
    assert code == 0 and json.loads(out)["rows"] == sum(len(v[0]) for v in rows.values())
    for (day, model), (a, p, _) in rows.items():
        table = pq.read_table(str(tmp_path / "l" / f"date={day}" / f"model={model}"))
        assert table["l1_loss"].to_pylist() == np.abs(a - p).tolist(), (day, model)


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["mae", "-h"])
    assert info.value.code == 0 and "Example:" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys):
    code, _, err = cli(capsys)
    assert code == 2 and "no command given" in err


def test_run_config_with_overrides(hive_dataset, tmp_path, capsys):
    root, rows = hive_dataset
    config = tmp_path / "job.yaml"
    out_json = tmp_path / "out" / "r.json"
    config.write_text(f"""
sources:
  - path: {root}
columns: {{actual: actual, prediction: prediction}}
by: [model]
filters: ["date==2026-11-01"]
output: {{json: {out_json}}}
""")
    code, out, _ = cli(capsys, "run", config, "--json", "--set", "filters=[date==2026-11-02]")
    doc = json.loads(out)
    a = np.concatenate([rows[("2026-11-02", m)][0] for m in ("v1", "v2")])
    p = np.concatenate([rows[("2026-11-02", m)][1] for m in ("v1", "v2")])
    assert code == 0 and doc["mae"] == exact_mae(a, p)
    assert json.loads(out_json.read_text()) == doc


def test_run_config_merges_sources_with_different_columns(tmp_path, capsys):
    write_parquet(tmp_path / "a" / "x.parquet", actual=[1.0, 2.0], prediction=[2.0, 2.0])
    write_parquet(tmp_path / "b" / "y.parquet", y=[10.0], yhat=[13.0])
    config = tmp_path / "job.toml"
    config.write_text(f"""
[[sources]]
path = "{tmp_path / 'a'}"

[[sources]]
path = "{tmp_path / 'b'}"
columns = {{ actual = "y", prediction = "yhat" }}
""")
    code, out, _ = cli(capsys, "run", config, "--json")
    assert code == 0 and json.loads(out)["mae"] == exact_mae([1.0, 2.0, 10.0], [2.0, 2.0, 13.0])
    assert json.loads(out)["count"] == 3


def test_shipped_configs_validate():
    from l1stream.scheduled.config import load_config

    for name in sorted(os.listdir(os.path.join(REPO, "configs"))):
        config = load_config(os.path.join(REPO, "configs", name))
        assert config["sources"], name


def test_demo_small(tmp_path, capsys):
    """The demo's figures equal an exact oracle over the rows it wrote (read back by pyarrow)."""
    import pyarrow.dataset as ds
    from helpers import Oracle

    code, out, err = cli(capsys, "demo", tmp_path / "demo", "--rows", "20000", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["count"] == 20000 and [g["key"]["model"] for g in doc["groups"]] == ["v1", "v2"]
    assert "demo data" in err
    table = ds.dataset(str(tmp_path / "demo"), partitioning="hive").to_table()
    slices = {}
    for model in ("v1", "v2"):
        rows = table.filter(ds.field("model") == model)
        slices[(model,)] = [(rows["actual"].to_numpy(), rows["prediction"].to_numpy())]
    oracle = Oracle(slices)
    assert doc["mae"] == oracle.mae and doc["count"] == oracle.count
    assert {g["key"]["model"]: (g["mae"], g["count"]) for g in doc["groups"]} == {
        key[0]: value for key, value in oracle.groups.items()}
    code, out2, _ = cli(capsys, "demo", tmp_path / "demo", "--rows", "20000", "--json")
    assert json.loads(out2)["mae"] == doc["mae"]  # deterministic, reused


def test_console_script_entry_point(tmp_path):
    path = write_parquet(tmp_path / "s.parquet", actual=[10, 11, 12, 13], prediction=[10, 12, 14, 11])
    proc = subprocess.run([sys.executable, "-m", "l1stream", "mae", path, "--json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["mae"] == 1.25


def test_run_config_writes_losses_and_refuses_ambiguous_sources(tmp_path, capsys):
    write_parquet(tmp_path / "a" / "x.parquet", actual=[1.0, 2.0], prediction=[2.0, 2.0])
    write_parquet(tmp_path / "b" / "y.parquet", y=[10.0], yhat=[13.0])
    config = tmp_path / "job.yaml"
    config.write_text(f"sources: [{tmp_path / 'a'}]\noutput: {{losses: {tmp_path / 'losses'}}}\n")
    assert cli(capsys, "run", config)[0] == 0
    import pyarrow.parquet as pq

    assert pq.read_table(str(tmp_path / "losses"))["l1_loss"].to_pylist() == [1.0, 0.0]
    config.write_text(f"""
sources:
  - path: {tmp_path / 'a'}
  - path: {tmp_path / 'b'}
    columns: {{actual: y, prediction: yhat}}
output: {{losses: {tmp_path / 'losses2'}}}
""")
    code, out, err = cli(capsys, "run", config)
    assert code == 2 and "output.losses" in err and not (tmp_path / "losses2").exists()


def test_json_is_one_line_and_indent_spreads_it(tmp_path, capsys):
    """The last stdout line is what Airflow's BashOperator pushes to XCom."""
    path = write_parquet(tmp_path / "seed.parquet", actual=[10.0, 11.0, 12.0, 13.0],
                         prediction=[10.0, 12.0, 14.0, 11.0])
    losses = ["losses", path, "--output", str(tmp_path / "losses")]
    for command in (["mae", path], ["quantiles", path], losses):
        code, out, _ = cli(capsys, *command, "--json")
        assert code == 0 and out.count("\n") == 1, out
        one_line = json.loads(out.splitlines()[-1])
        code, out, _ = cli(capsys, *command, "--json", "--indent", "2")
        assert code == 0 and out.count("\n") > 3 and out.splitlines()[1].startswith('  "')
        assert json.loads(out).keys() == one_line.keys()
    assert one_line["rows"] == 4


def test_indent_without_json_is_a_usage_error(tmp_path, capsys):
    path = write_parquet(tmp_path / "seed.parquet", actual=[1.0], prediction=[2.0])
    code, out, err = cli(capsys, "mae", path, "--indent", "2")
    assert code == 2 and out == ""
    assert err.strip() == "l1stream: error: --indent 2 formats --json output: give --json and 0 or more spaces"
