"""What a plain local run imports: only what it needs (the start-up is most of a small job's time).

Checked in a fresh interpreter through ``sys.modules`` after a real ``l1stream mae``: no Dask at all
(the graph runs inline for one task, on l1stream's small thread pool for more, unless Dask's
configuration says how local graphs run); never pandas,
no distributed, no dask.dataframe, no pyarrow.compute or pyarrow.dataset (row filters and frames
import them when used), no table libraries, plotting or object-storage clients.  The figures are
in benchmarks/RESULTS.md (``python benchmarks/startup.py``); this test keeps the gain.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import write_parquet

NEVER_ON_A_PLAIN_LOCAL_RUN = ["pandas", "distributed", "dask.dataframe", "dask.array", "pyarrow.compute",
                              "pyarrow.dataset", "matplotlib", "deltalake", "pyiceberg", "s3fs", "polars", "duckdb",
                              "sklearn", "scipy"]

PROBE = """
import json, sys
from l1stream.cli.commands import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def imported_by(*argv, env: dict | None = None) -> set:
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, argv)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["code"] == 0, proc.stderr
    return set(doc["modules"])


def test_a_plain_local_mae_imports_no_heavy_module(tmp_path):
    path = write_parquet(tmp_path / "p.parquet", actual=[1.0, 2.0, 4.0], prediction=[1.5, 2.0, 3.0])
    modules = imported_by("mae", path, "--quiet")
    assert not [m for m in NEVER_ON_A_PLAIN_LOCAL_RUN if m in modules]
    assert {"l1stream", "l1stream.parquet._pages", "l1stream.exact._kernel"} <= modules  # the run did run
    # its pages summed as they decode, its footer read by l1stream's own walk, its graph run inline:
    # no numpy, pyarrow, fsspec or Dask (together ~0.2 s of a small job)
    assert not [m for m in ("numpy", "pyarrow", "fsspec", "dask") if m in modules]
    # a file the page decoder hands back (nulls here) is read the ordinary way: pyarrow then
    nulls = write_parquet(tmp_path / "n.parquet", actual=[1.0, None, 4.0], prediction=[1.5, 2.0, 3.0])
    modules = imported_by("mae", nulls, "--quiet", "--nan-policy", "omit")
    assert "pyarrow" in modules and not [m for m in NEVER_ON_A_PLAIN_LOCAL_RUN if m in modules]


def test_a_graph_of_several_tasks_runs_without_dask_unless_dask_is_configured(tmp_path):
    for i in range(300):  # more files than one task holds (MAX_FILES_PER_TASK)
        write_parquet(tmp_path / "logs" / f"p{i:03d}.parquet", actual=[float(i)], prediction=[i + 0.5])
    home = tmp_path / "home"
    (home / ".config" / "dask").mkdir(parents=True)
    # dask-jobqueue writes this file on import: it says nothing of local runs
    (home / ".config" / "dask" / "jobqueue.yaml").write_text("jobqueue:\n  slurm:\n    cores: null\n")
    modules = imported_by("mae", tmp_path / "logs", "--quiet", env={"HOME": str(home)})
    assert "dask" not in modules and not [m for m in NEVER_ON_A_PLAIN_LOCAL_RUN if m in modules]
    # a configuration that says how local graphs run is honoured: Dask's scheduler runs the graph
    (home / ".config" / "dask" / "local.yaml").write_text("num_workers: 1\n")
    assert "dask.threaded" in imported_by("mae", tmp_path / "logs", "--quiet", env={"HOME": str(home)})
    (home / ".config" / "dask" / "local.yaml").unlink()
    assert "dask.threaded" in imported_by("mae", tmp_path / "logs", "--quiet",
                                          env={"HOME": str(home), "DASK_SCHEDULER": "threads"})


def test_by_a_column_and_json_output_stay_light_too(tmp_path):
    """Slicing by a data column needs pyarrow's compute kernels (dictionary encoding), nothing more."""
    path = write_parquet(tmp_path / "p.parquet", actual=[1.0, 2.0, 4.0, 5.0], prediction=[1.5, 2.0, 3.0, 5.0],
                         model=["a", "b", "a", None])
    modules = imported_by("mae", path, "--by", "model", "--json")
    assert not [m for m in NEVER_ON_A_PLAIN_LOCAL_RUN if m in modules and m != "pyarrow.compute"]
    partitioned = write_parquet(tmp_path / "logs" / "model=a" / "p.parquet", actual=[1.0], prediction=[2.0])
    modules = imported_by("mae", os.path.dirname(os.path.dirname(partitioned)), "--by", "model", "--json")
    assert not [m for m in NEVER_ON_A_PLAIN_LOCAL_RUN if m in modules]


def test_a_row_filter_imports_pyarrow_compute_only_then(tmp_path):
    path = write_parquet(tmp_path / "p.parquet", actual=[1.0, 2.0, 4.0], prediction=[1.5, 2.0, 3.0])
    assert "pyarrow.compute" in imported_by("mae", path, "--filter", "actual>1", "--quiet")


def test_version_and_help_import_no_engine():
    for argv in (["--version"], ["-h"]):
        proc = subprocess.run([sys.executable, "-c", "import sys\nfrom l1stream.cli.commands import main\n"
                               "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
                               "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                               "('dask', 'pyarrow', 'numpy', 'fsspec')))", *argv],
                              capture_output=True, text=True, timeout=60)
        assert proc.stdout.strip().splitlines()[-1] == "[]", (argv, proc.stdout[-500:])


def test_a_delta_table_imports_no_pandas_and_no_pyarrow(tmp_path):
    """deltalake hands its add actions over as an arro3 table, converted column by column: no
    pyarrow (~0.08 s), and no pandas, which ``pa.table()`` on it would import (~0.25 s)."""
    from services import need_module

    need_module("deltalake")
    import deltalake
    import pyarrow as pa

    for day in ("2026-11-01", "2026-11-02"):
        deltalake.write_deltalake(str(tmp_path / "t"), pa.table({"actual": [1.0, 2.0], "prediction": [1.5, 2.0],
                                                                 "date": [day, day]}),
                                  partition_by=["date"], mode="append")
    modules = imported_by("mae", tmp_path / "t", "--by", "date", "--quiet")
    assert "deltalake" in modules and "pandas" not in modules and "pyarrow" not in modules
