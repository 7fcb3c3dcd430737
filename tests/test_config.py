"""Config files fail at load time with the key path and the expected type."""

from __future__ import annotations

import pytest

from l1stream import ConfigError
from l1stream.cli.commands import main
from l1stream.scheduled.config import load_config


def load(tmp_path, text, name="job.yaml", overrides=()):
    path = tmp_path / name
    path.write_text(text)
    return load_config(str(path), overrides)


@pytest.mark.parametrize("text, path, words", [
    ("sources: [a]\ncolums: {}\n", "colums", "unknown key (did you mean 'columns'?)"),
    ("sources:\n  - path: a\n  - path: b\n    columns: {actual: 3}\n", "sources[1].columns.actual",
     "expected a string; got an integer 3"),
    ("sources:\n  - path: a\n    colour: red\n", "sources[0].colour", "unknown key"),
    ("columns: {actual: y}\n", "sources", "missing required key 'sources'"),
    ("sources:\n  - storage_options: {}\n", "sources[0].path", "missing required key 'path'"),
    ("sources: [a]\nnan_policy: drop\n", "nan_policy", "expected one of raise, omit, propagate; got 'drop'"),
    ("sources: [a]\nallow_skipped: yes please\n", "allow_skipped", "expected true or false"),
    ("sources: [a]\nnum_workers: two\n", "num_workers", "expected an integer or null"),
    ("sources: [a]\nby: [1, 2]\n", "by", "expected a string or a list of strings"),
    ("sources: [a]\nfilters: [[a, b]]\n", "filters[0]", "a filter string or a [column, op, value] list"),
    ("sources: []\n", "sources", "non-empty list"),
    ("- a\n- b\n", None, "must be a mapping"),
])
def test_validation_errors_name_the_key_path(tmp_path, text, path, words):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert words in str(info.value)
    if path is not None:
        assert info.value.path == path and str(info.value).startswith(path)


def test_yaml_syntax_error_has_line_number(tmp_path):
    with pytest.raises(ConfigError, match=r"YAML syntax error at line 3, column"):
        load(tmp_path, "sources:\n  - path: a\n  columns: [oops\n")


def test_toml_syntax_error_has_line_number(tmp_path):
    with pytest.raises(ConfigError, match=r"TOML syntax error: .*line 2"):
        load(tmp_path, 'sources = ["a"]\nby = \n', name="job.toml")


def test_overrides_use_key_paths(tmp_path):
    config = load(tmp_path, "sources:\n  - path: a\n", overrides=["sources[0].path=b", "columns.actual=y",
                                                                   "nan_policy=omit", "by=[m]"])
    assert config["sources"][0]["path"] == "b" and config["columns"]["actual"] == "y"
    assert config["nan_policy"] == "omit" and config["by"] == ["m"]
    with pytest.raises(ConfigError, match="sources\\[3\\] does not exist"):
        load(tmp_path, "sources: [a]\n", overrides=["sources[3].path=b"])


def test_cli_config_errors_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("sources: [a]\nscheduler: 3\n")
    code = main(["run", str(path), "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and '"type": "config_error"' in out and '"path": "scheduler"' in out
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
