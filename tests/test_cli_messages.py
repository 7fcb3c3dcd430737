"""The command line speaks command line: every message names options as the user types them there.

Each test runs the real command (``main``) and asserts the exact flag or key in the message, the exit
code and, for the parser, the help text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from helpers import write_parquet

import l1stream
from l1stream.cli.commands import main
from l1stream.errors import BadFileError, UsageError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def good(tmp_path):
    return write_parquet(tmp_path / "data" / "good.parquet", actual=[1.0, 2.0, 4.0], prediction=[1.5, 2.0, 3.0],
                         model=["a", "b", "a"])


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "data" / "export.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text("actual,prediction,model\n1,2,a\n3,4,b\n")
    return str(path)


def test_workers_error_names_the_flag(good, capsys):
    code, out, err = cli(capsys, "mae", good, "--workers", "0")
    assert code == 2 and out == ""
    assert err == "l1stream: error: --workers must be a positive integer; got 0\n"
    with pytest.raises(UsageError, match=r"num_workers must be a positive integer or None; got 0"):
        l1stream.evaluate(good, num_workers=0)  # Python keeps Python's spelling


def test_bad_file_advice_in_each_interface(good, csv_file, tmp_path, capsys):
    code, _, err = cli(capsys, "mae", good, csv_file)
    assert code == 3
    assert "pass --on-bad-file skip to leave it out" in err and "on_bad_file" not in err
    config = tmp_path / "job.yaml"
    config.write_text(f"sources: [{good}, {csv_file}]\n")
    code, _, err = cli(capsys, "run", config)
    assert code == 3
    assert "pass on_bad_file: skip to leave it out" in err and "--on-bad-file" not in err and "='skip'" not in err
    with pytest.raises(BadFileError, match=r"pass on_bad_file='skip' to leave it out"):
        l1stream.evaluate([good, csv_file])


def test_nan_advice_names_the_flag(tmp_path, capsys):
    path = write_parquet(tmp_path / "nan.parquet", actual=[1.0, float("nan")], prediction=[1.0, 2.0])
    code, _, err = cli(capsys, "mae", path)
    assert code == 3 and "--nan-policy omit" in err and "nan_policy" not in err


def test_skipped_file_line_names_its_path_once_without_advice(good, csv_file, capsys):
    code, out, err = cli(capsys, "mae", good, csv_file, "--on-bad-file", "skip")
    assert code == 5
    (line,) = [line for line in out.splitlines() if line.startswith("skipped")]
    assert line.count(csv_file) == 1 and line.count("export.csv") == 1
    assert "on-bad-file" not in line and "on_bad_file" not in line and "to leave it out" not in line
    assert err.strip() == ("l1stream: error: 1 file(s) were skipped as unreadable (listed above); allow that with "
                           "--allow-skipped")
    code, out, _ = cli(capsys, "mae", good, csv_file, "--on-bad-file", "skip", "--json")
    (skipped,) = json.loads(out)["files"]["skipped"]
    assert skipped["path"] == csv_file and csv_file not in skipped["reason"]
    assert skipped["reason"].startswith("not a Parquet file: it looks like a CSV file")
    assert "on_bad_file" not in skipped["reason"]


def test_skipped_files_error_in_config_spelling(good, csv_file, tmp_path, capsys):
    config = tmp_path / "job.yaml"
    config.write_text(f"sources: [{good}, {csv_file}]\non_bad_file: skip\n")
    code, _, err = cli(capsys, "run", config)
    assert code == 5 and err.strip().endswith("allow that with allow_skipped: true")


def _help(capsys, *command):
    with pytest.raises(SystemExit) as info:
        main([*command, "-h"])
    assert info.value.code == 0
    return capsys.readouterr().out


COMMANDS = ["mae", "report", "losses", "run", "quantiles", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_short_q_means_quiet_in_every_command(command, capsys):
    text = _help(capsys, command)
    assert "-q, --quiet" in text and "-v, --verbose" in text


def test_quantiles_help_lists_only_what_works(capsys):
    text = _help(capsys, "quantiles")
    assert "--quantile Q" in text and "--by" not in text and "--cluster" not in text
    code, _, err = cli(capsys, "quantiles", "logs/", "--by", "model")
    assert code == 2 and "unrecognized arguments: --by model" in err
    assert "--cluster" not in _help(capsys, "report")  # report runs on --scheduler ADDRESS, never --cluster


def test_quantiles_dash_q_number_is_explained(good, capsys):
    code, _, err = cli(capsys, "quantiles", good, "-q", "0.9")
    assert code == 2
    assert "'0.9' is not a source: give quantiles with --quantile 0.9 (-q is --quiet in every command)" in err
    code, out, _ = cli(capsys, "quantiles", good, "--quantile", "0.5", "-q", "--json")
    assert code == 0 and json.loads(out)["median"] == 0.5  # |errors| 0.5, 0, 1: the median is 0.5


@pytest.mark.parametrize("args, expected", [
    (["--actual", "actul"], "actual column 'actul' is not in the data (did you mean 'actual'?)"),
    (["--by", "modle"], "by key 'modle' is neither a partition key nor a column (did you mean 'model'?)"),
    (["--filter", "modl==a"], "(did you mean 'model'?)"),
])
def test_typo_in_a_column_gets_did_you_mean(good, capsys, args, expected):
    code, _, err = cli(capsys, "mae", good, *args)
    assert code in (2, 3) and expected in err


def test_csv_file_is_named_as_csv(csv_file, capsys):
    code, _, err = cli(capsys, "mae", csv_file)
    assert code == 3
    assert "not a Parquet file: it looks like a CSV file; l1stream reads Parquet files and Delta and Iceberg " \
           "tables" in err
    assert "magic bytes" not in err


def test_directory_without_parquet(tmp_path, capsys):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "a.csv").write_text("actual,prediction\n1,2\n3,4\n5,6\n")
    (folder / "b.csv").write_text("actual,prediction\n1,2\n")
    code, _, err = cli(capsys, "mae", folder)
    assert code == 3
    assert f"no Parquet files under '{folder}': it holds 2 file(s) (a.csv, b.csv; a.csv looks like a CSV file)" in err


def test_parquet_files_without_suffix_are_still_read(tmp_path, capsys):
    """Hive writes ``000000_0``: a directory of Parquet without the suffix is Parquet."""
    write_parquet(tmp_path / "t" / "000000_0", actual=[1.0, 3.0], prediction=[2.0, 3.0])
    code, out, _ = cli(capsys, "mae", tmp_path / "t", "--json")
    assert code == 0 and json.loads(out)["mae"] == 0.5


def test_https_without_aiohttp_names_the_extra(tmp_path):
    script = textwrap.dedent("""
        import sys
        sys.modules["aiohttp"] = None  # as on a machine without the http extra
        from l1stream.cli.commands import main
        sys.exit(main(["mae", "https://example.invalid/logs/part-0.parquet"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "the https:// filesystem is not installed" in done.stderr
    assert 'pip install "l1stream[http]"' in done.stderr and "Traceback" not in done.stderr
    with open(os.path.join(REPO, "pyproject.toml")) as handle:
        assert 'http = ["aiohttp", "requests"]' in handle.read()


def test_run_says_where_it_wrote_its_outputs(good, tmp_path, capsys):
    out_json, report = tmp_path / "results" / "mae.json", tmp_path / "results" / "report.html"
    config = tmp_path / "job.yaml"
    config.write_text(f"sources: [{good}]\noutput: {{json: {out_json}, report: {report}}}\n")
    for extra in ([], ["--json"]):
        code, out, err = cli(capsys, "run", config, *extra)
        assert code == 0
        assert f"l1stream: wrote {out_json}\n" in err and f"l1stream: wrote {report}\n" in err
        assert os.path.exists(out_json) and os.path.exists(report)
    with open(os.path.join(REPO, ".gitignore")) as handle:
        assert "/l1stream-demo-results/" in handle.read().split()  # where configs/demo.yaml writes


def _cli_without(tmp_path, blocked, *args, env=None):
    """Run the CLI in a fresh interpreter where the named C extensions cannot be imported."""
    code = (f"import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"
            f"from l1stream.cli import main\nsys.exit(main({list(args)!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_missing_c_parts_are_noted_once_on_stderr(tmp_path):
    path = write_parquet(tmp_path / "a.parquet", actual=[1.0, 2.0], prediction=[1.5, 2.0])
    both = ["l1stream.parquet._pages", "l1stream.exact._kernel"]
    done = _cli_without(tmp_path, both, "mae", path, "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["mae"] == 0.25
    assert done.stderr == ("l1stream: note: no C parts: built without a C compiler; the answers are the same, "
                           "about 2x slower. Install a C compiler (gcc) and reinstall l1stream to build them "
                           "('l1stream --version' says which load)\n")
    done = _cli_without(tmp_path, both[:1], "mae", path)
    assert done.returncode == 0 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("l1stream: note: only the C kernel; the answers are the same")
    for quiet in (_cli_without(tmp_path, both, "mae", path, "--quiet"),
                  _cli_without(tmp_path, both, "mae", path, env={"L1STREAM_NATIVE": "0"}),
                  _cli_without(tmp_path, [], "mae", path)):
        assert quiet.returncode == 0 and quiet.stderr == ""
