"""Exact out-of-core quantiles of |error|: numpy/sklearn bit for bit, on any partitioning."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from helpers import write_parquet, write_split
from sklearn.metrics import median_absolute_error

import l1stream
from l1stream.engine import quantiles as quantile_module

QS = (0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0)


def wide(rng, n):
    values = np.ldexp(rng.normal(size=n), rng.integers(-1070, 1015, n))
    values[rng.random(n) < 0.1] = 0.0
    return values


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
@pytest.mark.parametrize("collect_limit", [1 << 20, 3])
def test_matches_numpy_and_sklearn(tmp_path, rng, n, collect_limit, monkeypatch):
    monkeypatch.setattr(quantile_module, "COLLECT_LIMIT", collect_limit)  # 3: forces the full 64-bit descent
    a, p = wide(rng, n), wide(rng, n)
    write_split(tmp_path, a, p, min(n, 5), row_group_size=97)
    result = l1stream.error_quantiles(str(tmp_path), q=QS, scheduler="synchronous")
    losses = np.abs(a - p)
    assert result.median == np.median(losses) == median_absolute_error(a, p)
    for q in QS:
        assert result.quantiles[q] == np.quantile(losses, q), q
    assert result.count == n and result.left_out == 0
    if collect_limit == 3 and n > 100:
        assert 3 <= result.passes <= 4  # descended several digits; never more than four passes


def test_ties_and_partitionings_give_the_same_bits(tmp_path, rng):
    a = rng.integers(0, 50, 20_000).astype(float)
    p = rng.integers(0, 50, 20_000).astype(float)  # many equal losses
    results = []
    for files, rows in ((1, None), (13, 1000), (40, 7)):
        root = tmp_path / f"f{files}"
        write_split(root, a, p, files, row_group_size=rows)
        results.append(l1stream.error_quantiles(str(root), q=QS, chunk_rows=555))
    losses = np.abs(a - p)
    for r in results:
        assert r.median == np.median(losses)
        assert r.quantiles == {q: float(np.quantile(losses, q)) for q in QS}


def test_overflowing_losses_are_inf_as_in_numpy(tmp_path):
    huge = 1.7976931348623157e308
    a, p = np.array([huge, 1.0, 2.0]), np.array([-huge, 1.5, 2.0])
    path = write_parquet(tmp_path / "o.parquet", actual=a, prediction=p)
    with np.errstate(over="ignore"):
        losses = np.abs(a - p)
    result = l1stream.error_quantiles(path, q=(0.9, 1.0))
    assert result.median == np.median(losses) and result.quantiles[1.0] == math.inf
    with np.errstate(invalid="ignore"):
        expected = np.quantile(losses, 0.9)  # inf - x interpolation: numpy gives NaN here, and so must we
    got = result.quantiles[0.9]
    assert (math.isnan(expected) and math.isnan(got)) or got == expected


def test_nan_policies(tmp_path):
    path = write_parquet(tmp_path / "n.parquet", actual=pa.array([1.0, None, 3.0, 4.0]),
                         prediction=[2.0, 2.0, float("nan"), 10.0])
    with pytest.raises(l1stream.NonFiniteError, match=r"n\.parquet: row group 0: .*'actual' has 1 null"):
        l1stream.error_quantiles(path)
    omitted = l1stream.error_quantiles(path, q=(0.5,), nan_policy="omit")
    assert omitted.median == np.median([1.0, 6.0]) and omitted.left_out == 2 and omitted.count == 2
    propagated = l1stream.error_quantiles(path, nan_policy="propagate")
    assert math.isnan(propagated.median) and propagated.to_dict()["median"] is None


def test_filters_and_no_rows(hive_dataset):
    root, rows = hive_dataset
    result = l1stream.error_quantiles(str(root), q=(0.9,), filters=["model==v2", "segment==a"])
    losses = np.concatenate([np.abs(v[0] - v[1])[v[2] == "a"] for k, v in rows.items() if k[1] == "v2"])
    assert result.median == np.median(losses) and result.quantiles[0.9] == np.quantile(losses, 0.9)
    with pytest.raises(l1stream.NoRowsError):
        l1stream.error_quantiles(str(root), filters="actual<0")


def test_bad_quantile_values(hive_dataset):
    root, _ = hive_dataset
    with pytest.raises(l1stream.UsageError, match="between 0 and 1"):
        l1stream.error_quantiles(str(root), q=(0.5, 1.5))


def test_cli_quantiles(hive_dataset, capsys):
    import json

    from l1stream.cli.commands import main

    root, rows = hive_dataset
    assert main(["quantiles", str(root), "--quantile", "0.99", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    losses = np.concatenate([np.abs(v[0] - v[1]) for v in rows.values()])
    assert doc["median"] == np.median(losses) and doc["quantiles"] == {"0.99": np.quantile(losses, 0.99)}
    assert main(["quantiles", str(root), "--by", "model"]) == 2


def test_histogram_from_the_first_pass_is_exact(tmp_path, rng):
    a, p = wide(rng, 3000), wide(rng, 3000)
    write_split(tmp_path, a, p, 4)
    result = l1stream.error_quantiles(str(tmp_path))
    with np.errstate(over="ignore"):
        losses = np.abs(a - p)
    assert sum(c for _, _, c in result.histogram) == 3000
    for lower, upper, count in result.histogram:
        assert lower < upper and count == int(((losses >= lower) & (losses < upper)).sum())
    zero_bin = next(b for b in result.histogram if b[0] == 0.0)
    assert zero_bin[2] == int((losses < zero_bin[1]).sum())  # zeros and the tiniest subnormals
