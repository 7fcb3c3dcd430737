"""The README's promises checked against the code: set-up commands, exit codes, JSON keys."""

from __future__ import annotations

import os
import re

from l1stream import errors

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as handle:
        return handle.read()


def test_ci_runs_the_readme_test_command():
    readme, ci = read("README.md"), read(".ci", "run")
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert blocks[0] == "pip install . && l1stream demo"
    assert blocks[1] == 'pip install -e ".[test]" && python -m pytest'
    assert 'python3 -m pip install -e ".[test]" && python3 -m pytest' in ci
    assert '"$status" -eq 5' in ci  # a run that collected no test fails


def test_exit_codes_table_matches_errors_module():
    readme = read("README.md")
    table = dict(re.findall(r"^\| (\d+) \| ([^|]+) \|$", readme, re.M))
    assert table["0"].startswith("success")
    assert errors.EXIT_USAGE == 2 and "usage" in table["2"]
    assert errors.EXIT_DATA == 3 and "data error" in table["3"]
    assert errors.EXIT_GATE == 4 and "gate" in table["4"]
    assert errors.EXIT_SKIPPED == 5 and "skipped" in table["5"]
    assert errors.EXIT_CLUSTER == 6 and "cluster" in table["6"]
    for cls in (errors.UsageError, errors.ConfigError, errors.DataError, errors.BadFileError,
                errors.SkippedFilesError, errors.ClusterError):
        assert str(cls.exit_code) in table


def test_json_keys_in_readme_match_to_dict(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    import l1stream

    pq.write_table(pa.table({"actual": [1.0, 2.0], "prediction": [2.0, 2.0], "model": ["a", "b"]}),
                   str(tmp_path / "p.parquet"))
    doc = l1stream.evaluate(str(tmp_path), by="model").to_dict(file_reports=True)
    readme = read("README.md")
    block = re.search(r"```jsonc\n(.*?)\n```", readme, re.S).group(1)
    documented = set(re.findall(r'^  "(\w+)":', block, re.M))
    assert documented == set(doc)
    assert set(re.findall(r'"(\w+)": \[\{"path"', block)) <= set(doc["files"])
    assert set(doc["files"]) <= set(re.findall(r'"(\w+)":', block))


def test_readme_figures_are_what_the_demo_prints(tmp_path):
    """The README's demo output, its "Why exact matters" l1stream row and its Python example show
    what ``l1stream demo`` prints on a fresh machine (4M rows: written and evaluated in a few seconds)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "l1stream", "demo", str(tmp_path / "demo"), "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    readme = read("README.md")
    shown = re.search(r"It prints .*?\n\n```text\n(.*?)\n```", readme, re.S).group(1).splitlines()
    assert shown == printed
    mae = printed[0].split()[1]
    assert f"| **l1stream** (threads, synchronous, 1 thread, 10k-row chunks, 2 processes) | `{mae}` | 0 ulp |" in readme
    assert f"result.mae          # {mae} (a float)" in readme
    assert "4 million rows" in readme and "python benchmarks/exactness.py" in readme


def test_readme_ulp_column_matches_its_values():
    """Each peer's distance in the "Why exact matters" table is the distance of the values it shows."""
    import numpy as np

    readme = read("README.md")
    table = readme[readme.index("| engine | MAE returned |"):readme.index("A metric that moves")]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`" in line]
    exact = float(re.search(r"`([\d.]+)` \| 0 ulp", table).group(1))
    for row in rows:
        values = [float(v) for v in re.findall(r"`([\d.]+)`", row.split(" | ")[1])]
        stated = sorted(int(d.replace(",", "")) for d in re.findall(r"([\d,]+)(?:,| ulp)", row.split(" | ")[2]))
        bits = np.array(values + [exact]).view(np.int64)
        assert sorted(abs(int(b) - int(bits[-1])) for b in bits[:-1]) == stated, row
