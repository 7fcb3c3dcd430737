"""Dask's conventions: dask.config's scheduler, Executors and get functions, compute=False for
dask.compute, scheduler files; every answer checked against the exact oracle."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from helpers import exact_mae, write_split

import l1stream
from l1stream.cli import main
from l1stream.errors import UsageError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(5)
    a, p = rng.lognormal(10, 1, 6000), rng.lognormal(10, 1, 6000)
    root = tmp_path_factory.mktemp("logs")
    write_split(root, a, p, 6)
    return str(root), a, p


class CountingGet:
    """A Dask get function that records that it ran (dask.get underneath)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, dsk, keys, **kwargs):
        self.calls += 1
        return dask.get(dsk, keys, **kwargs)


def test_dask_config_scheduler_is_honoured(data):
    root, a, p = data
    spy = CountingGet()
    with dask.config.set(scheduler=spy):
        result = l1stream.evaluate(root)
    assert spy.calls == 1 and result.mae == exact_mae(a, p)
    assert result.to_dict()["scheduler"] == "get:CountingGet"
    with dask.config.set(scheduler="sync"):
        assert l1stream.evaluate(root).to_dict()["scheduler"] == "sync"
    spy = CountingGet()
    with dask.config.set(scheduler=spy):  # an explicit scheduler wins over the config, as in dask
        assert l1stream.evaluate(root, scheduler="threads").to_dict()["scheduler"] == "threads"
    assert spy.calls == 0


def test_an_executor_runs_the_graph(data):
    root, a, p = data
    with ThreadPoolExecutor(3) as pool:
        result = l1stream.evaluate(root, scheduler=pool)
        assert result.mae == exact_mae(a, p) and result.to_dict()["scheduler"] == "executor:ThreadPoolExecutor"
        with dask.config.set(scheduler=pool):
            assert l1stream.evaluate(root).mae == exact_mae(a, p)


def test_distributed_without_a_client_says_so(data):
    with pytest.raises(UsageError, match=r"scheduler 'distributed' asks for the active distributed.Client"):
        l1stream.evaluate(data[0], scheduler="distributed")


@pytest.mark.filterwarnings("ignore:Computing mixed collections")  # dask-expr and delayed in one compute
def test_compute_false_shares_one_dask_compute(data):
    root, a, p = data
    frame = pd.DataFrame({"actual": a, "prediction": p, "g": np.arange(len(a)) % 2})
    lazy_paths = l1stream.evaluate(root, compute=False)
    lazy_frame = l1stream.evaluate(dd.from_pandas(frame, npartitions=4), by="g", compute=False)
    lazy_pandas = l1stream.evaluate(frame, compute=False)
    other = dd.from_pandas(frame, npartitions=4).actual.sum()
    spy = CountingGet()
    paths, by_g, pandas_result, total = dask.compute(lazy_paths, lazy_frame, lazy_pandas, other, scheduler=spy)
    assert spy.calls == 1
    assert paths.mae == exact_mae(a, p) == pandas_result.mae and by_g.mae == exact_mae(a, p)
    assert by_g.group_states[(1,)].mae == exact_mae(a[1::2], p[1::2])
    assert total == pytest.approx(a.sum())
    with pytest.raises(UsageError, match=r"compute=False returns a graph .* start the cluster yourself"):
        l1stream.evaluate(root, compute=False, cluster={"kind": "local", "workers": 1})


def test_scheduler_file(tmp_path, data, capsys):
    bad = tmp_path / "scheduler.json"
    with pytest.raises(UsageError, match=r"does not exist: start the scheduler with 'dask scheduler "
                                         r"--scheduler-file"):
        l1stream.evaluate(data[0], scheduler_file=bad)
    bad.write_text(json.dumps({"address": "tcp://127.0.0.1:notaport"}))
    with pytest.raises(UsageError, match=r"the port must be a number"):
        l1stream.evaluate(data[0], scheduler_file=bad)
    bad.write_text("{}")
    assert main(["mae", data[0], "--scheduler-file", str(bad)]) == 2
    assert "holds no scheduler address (got None)" in capsys.readouterr().err
    assert main(["mae", data[0], "--scheduler-file", str(bad), "--scheduler", "threads"]) == 2
    assert "give either --scheduler or --scheduler-file, not both" in capsys.readouterr().err
