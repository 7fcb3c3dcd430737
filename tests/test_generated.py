"""Shell completion and JSON Schemas: generated from the code, current, and working for real.

The completion scripts are run by bash (and parsed by zsh); the schemas validate real ``--json``
outputs and the shipped configs, and reject what the config loader rejects.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess

import jsonschema
import pytest
from helpers import write_parquet
from services import need

from l1stream.cli.commands import main
from l1stream.cli.generate import REPO, generated
from l1stream.cli.schemas import config_schema, result_schema
from l1stream.errors import ConfigError
from l1stream.scheduled.config import _parse_file, validate_config

BASH = os.path.join(REPO, "l1stream", "cli", "completions", "l1stream.bash")


def test_checked_in_files_are_what_the_code_generates():
    for relative, text in generated().items():
        with open(os.path.join(REPO, relative), encoding="utf-8") as handle:
            assert handle.read() == text, f"{relative} is stale: run python -m l1stream.cli.generate"


@pytest.mark.parametrize("shell, name", [("bash", "l1stream.bash"), ("zsh", "_l1stream")])
def test_completion_command_prints_the_shipped_script(shell, name, capsys):
    assert main(["completion", shell]) == 0
    with open(os.path.join(REPO, "l1stream", "cli", "completions", name), encoding="utf-8") as handle:
        assert capsys.readouterr().out == handle.read()


def _complete(*words: str) -> list:
    """What bash offers after ``l1stream WORDS`` (the last word is the one being completed)."""
    line = " ".join(("l1stream",) + words)
    script = (f"source {BASH}\nCOMP_WORDS=(l1stream {' '.join(repr(w) for w in words)})\n"
              f"COMP_CWORD={len(words)}\nCOMP_LINE={line!r}\nCOMP_POINT={len(line)}\n"
              "_shtab_l1stream\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return sorted(filter(None, done.stdout.splitlines()))


def test_bash_completes_commands_flags_and_choices():
    assert _complete("qu") == ["quantiles"]
    assert "--nan-policy" in _complete("mae", "--nan")
    assert [w.strip() for w in _complete("mae", "logs/", "--nan-policy", "")] == ["omit", "propagate", "raise"]
    assert [w.strip() for w in _complete("report", "--cl")] == []  # report has no --cluster
    assert [w.strip() for w in _complete("completion", "")] == ["bash", "zsh"]


def test_zsh_parses_its_completion():
    zsh = shutil.which("zsh")
    need(zsh is not None, "zsh (Debian's zsh package; .ci/run installs it)")
    script = os.path.join(REPO, "l1stream", "cli", "completions", "_l1stream")
    done = subprocess.run([zsh, "-n", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def logs(tmp_path):
    write_parquet(tmp_path / "logs" / "model=a" / "p.parquet", actual=[1.0, 2.0, 4.0], prediction=[1.5, 2.0, 3.0],
                  base=[1.0, 2.5, 4.0], w=[1.0, 2.0, 1.0])
    write_parquet(tmp_path / "logs" / "model=b" / "p.parquet", actual=[3.0, float("nan")], prediction=[1.0, 1.0],
                  base=[3.0, 1.0], w=[1.0, 1.0])
    (tmp_path / "logs" / "model=b" / "notes.csv").write_text("a,b\n1,2\n")
    return tmp_path / "logs"


@pytest.mark.parametrize("extra", [
    [], ["--by", "model"], ["--weight", "w", "--by", "model"], ["--baseline-prediction", "base", "--by", "model"],
    ["--per-file"], ["--max-mae", "10", "--gate-slices", "--by", "model"], ["--nan-policy", "propagate"],
])
def test_every_json_result_matches_the_schema(logs, capsys, extra):
    code = main(["mae", str(logs), "--json", "--nan-policy", "omit", "--on-bad-file", "skip", "--allow-skipped",
                 *extra])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, result_schema())
    assert doc["files"]["skipped"] and doc["left_out"]["nan"] in (0, 1)


def test_the_schema_rejects_an_unknown_key(logs, capsys):
    assert main(["mae", str(logs), "--json", "--nan-policy", "omit", "--on-bad-file", "skip",
                 "--allow-skipped"]) == 0
    doc = json.loads(capsys.readouterr().out)
    doc["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, result_schema())


def test_shipped_configs_match_the_config_schema():
    paths = glob.glob(os.path.join(REPO, "configs", "*.yaml")) + glob.glob(os.path.join(REPO, "configs", "*.toml"))
    assert paths
    for path in paths:
        jsonschema.validate(_parse_file(path), config_schema())


@pytest.mark.parametrize("config", [
    {"sources": ["x"], "nan_polcy": "omit"}, {"sources": ["x"], "nan_policy": "drop"}, {"nan_policy": "omit"},
    {"sources": ["x"], "num_workers": 0}, {"sources": ["x"], "columns": {"actul": "y"}},
    {"sources": [{"paths": "x"}]}, {"sources": ["x"], "allow_skipped": "yes"},
])
def test_config_schema_rejects_what_the_loader_rejects(config):
    with pytest.raises(ConfigError):
        validate_config(config)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, config_schema())
