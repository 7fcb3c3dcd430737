"""scikit-learn and torchmetrics conventions, checked against sklearn itself and exact Fractions."""

from __future__ import annotations

import pickle
from fractions import Fraction

import numpy as np
import pytest
import sklearn.metrics
from helpers import exact_mae

import l1stream
from l1stream.errors import UsageError

RNG = np.random.default_rng(7)
Y_TRUE = RNG.integers(-1000, 1000, size=(500, 3)).astype(float)
Y_PRED = Y_TRUE + RNG.integers(-50, 50, size=(500, 3))
WEIGHT = RNG.integers(1, 5, size=500).astype(float)


def _exact_average(weights, sample_weight=None):
    w = [Fraction(1)] * len(Y_TRUE) if sample_weight is None else [Fraction(v) for v in sample_weight]
    maes = [sum(wi * abs(Fraction(x) - Fraction(y)) for wi, x, y in zip(w, Y_TRUE[:, j], Y_PRED[:, j])) / sum(w)
            for j in range(3)]
    value = sum(Fraction(v) * m for v, m in zip(weights, maes)) / sum(Fraction(v) for v in weights)
    return value.numerator / value.denominator


def test_sklearn_signature_and_names():
    """Integer data: sklearn's per-output sums are exact, so its raw values are the correctly rounded
    ones; its averages round the rounded outputs again, ours round the exact average once."""
    for kwargs in ({}, {"sample_weight": WEIGHT}):
        expected = sklearn.metrics.mean_absolute_error(Y_TRUE, Y_PRED, multioutput="raw_values", **kwargs)
        got = l1stream.mean_absolute_error(Y_TRUE, Y_PRED, multioutput="raw_values", **kwargs)
        np.testing.assert_array_equal(got, expected)
        for multioutput, weights in (("uniform_average", [1, 1, 1]), ([0.25, 0.25, 0.5], [0.25, 0.25, 0.5])):
            sklearn_value = sklearn.metrics.mean_absolute_error(Y_TRUE, Y_PRED, multioutput=multioutput, **kwargs)
            got = l1stream.mean_absolute_error(Y_TRUE, Y_PRED, multioutput=multioutput, **kwargs)
            assert got == _exact_average(weights, kwargs.get("sample_weight"))
            assert abs(got - sklearn_value) <= 2 * np.spacing(got)
    assert l1stream.mean_absolute_error(y_true=[1.0, 2.0], y_pred=[2.0, 2.0]) == 0.5
    assert l1stream.mean_absolute_error(actual=[1.0, 2.0], prediction=[2.0, 2.0]) == 0.5  # today's names


def test_multioutput_on_floats_is_exact():
    """Where sklearn's float sums round, each output and their average are the exact values."""
    a, p = RNG.lognormal(10, 2, size=(3000, 4)), RNG.lognormal(10, 2, size=(3000, 4))
    raw = l1stream.mean_absolute_error(a, p, multioutput="raw_values")
    assert raw.tolist() == [exact_mae(a[:, j], p[:, j]) for j in range(4)]
    exact = sum(Fraction(sum(abs(Fraction(x) - Fraction(y)) for x, y in zip(a[:, j], p[:, j])), 3000)
                for j in range(4)) / 4
    assert l1stream.mean_absolute_error(a, p) == exact.numerator / exact.denominator
    assert l1stream.mean_absolute_error(a, p, multioutput="raw_values")[0] == exact_mae(a[:, 0], p[:, 0])


@pytest.mark.parametrize("kwargs, words", [
    ({"y_true": [[1.0, 2.0]], "y_pred": [1.0, 2.0]}, r"same number of dimensions, but y_true is 2-D and y_pred 1-D"),
    ({"y_true": [[1.0, 2.0]], "y_pred": [[1.0, 2.0, 3.0]]}, r"same shape, but got \(1, 2\) and \(1, 3\)"),
    ({"y_true": [1.0], "y_pred": [1.0], "multioutput": "mean"}, r"multioutput must be 'raw_values'"),
    ({"y_true": [[1.0, 2.0]], "y_pred": [[1.0, 2.0]], "multioutput": [1.0]}, r"2 non-negative numbers"),
    ({"y_true": [1.0], "y_pred": [1.0], "actual": [1.0]}, r"give y_true or actual, not both"),
    ({"y_pred": [1.0]}, r"y_true is required \(or actual=\)"),
])
def test_sklearn_style_misuse_is_a_usage_error(kwargs, words):
    with pytest.raises(UsageError, match=words):
        l1stream.mean_absolute_error(**kwargs)


def test_torchmetrics_names_on_the_accumulator():
    metric = l1stream.MeanAbsoluteError()
    a, p = Y_TRUE[:, 0], Y_PRED[:, 0]
    batch_values = [metric(a[i:i + 100], p[i:i + 100]) for i in range(0, 500, 100)]  # __call__ = forward
    assert batch_values == [exact_mae(a[i:i + 100], p[i:i + 100]) for i in range(0, 500, 100)]
    assert metric.compute() == exact_mae(a, p) and metric.count == 500
    other = l1stream.MeanAbsoluteError()
    other.forward(Y_TRUE[:, 1], Y_PRED[:, 1])
    metric.merge_state(pickle.loads(pickle.dumps(other)))
    assert metric.compute() == exact_mae(np.concatenate([a, Y_TRUE[:, 1]]), np.concatenate([p, Y_PRED[:, 1]]))
    metric.reset()
    assert metric.count == 0
    metric.merge_state(other.state)  # an L1State merges too
    assert metric.compute() == exact_mae(Y_TRUE[:, 1], Y_PRED[:, 1])


def test_dask_arrays_block_by_block():
    """Out of core: exact states per block, merged; the same bits as the in-memory metric."""
    import dask
    import dask.array as da

    a, p = RNG.lognormal(10, 2, size=(5000, 3)), RNG.lognormal(10, 2, size=(5000, 3))
    w = RNG.random(5000)
    for chunks in ((700, 3), (1000, 2), (5000, 1)):
        ta, tp = da.from_array(a, chunks=chunks), da.from_array(p, chunks=(900, 3))
        raw = l1stream.mean_absolute_error(ta, tp, multioutput="raw_values")
        assert raw.tolist() == [exact_mae(a[:, j], p[:, j]) for j in range(3)]
        assert l1stream.mean_absolute_error(ta, tp) == l1stream.mean_absolute_error(a, p)
        weighted = l1stream.mean_absolute_error(ta[:, 0], tp[:, 0], sample_weight=da.from_array(w, chunks=333))
        assert weighted == exact_mae(a[:, 0], p[:, 0], w)
    lazy = l1stream.mean_absolute_error(da.from_array(a[:, 0], chunks=100), p[:, 0], compute=False)
    assert dask.compute(lazy)[0] == exact_mae(a[:, 0], p[:, 0])
    with pytest.raises(UsageError, match=r"1-D or 2-D of one shape, but got \(5000,\) and \(5000, 3\)"):
        l1stream.mean_absolute_error(da.from_array(a[:, 0]), p)


LOCAL_FORMS = ["logs", "./logs", "logs/", "logs//", ".", "./", "/", "/tmp/x/../y", "~/logs", "~", "file:///tmp/a/",
               "file:logs", "local:///tmp/b", "local:rel", "file://", "/tmp//double//", "a b/c", "logs/*.parquet"]


@pytest.mark.parametrize("form", LOCAL_FORMS)
def test_local_paths_split_as_fsspec_splits_them_without_it(form):
    """A plain local path takes no fsspec import, and must come out exactly as fsspec's url_to_fs
    gives it (state-store keys and the history hold these paths)."""
    from fsspec.core import url_to_fs

    from l1stream.storage import LocalFiles, is_local, split_url

    fs, path = split_url(form)
    theirs, their_path = url_to_fs(form)
    assert isinstance(fs, LocalFiles) and is_local(fs) and is_local(theirs)
    assert path == their_path


def test_the_lazy_local_filesystem_is_fsspec_s_and_pickles():
    import pickle

    from l1stream.storage import LocalFiles

    fs = pickle.loads(pickle.dumps(LocalFiles()))
    assert fs.exists(__file__) and fs.info(__file__)["type"] == "file"


def test_the_lazy_local_filesystem_answers_as_fsspec_s(tmp_path):
    import os

    from fsspec.implementations.local import LocalFileSystem

    from l1stream.storage import LocalFiles

    (tmp_path / "d").mkdir()
    (tmp_path / "f.parquet").write_bytes(b"x" * 10)
    os.symlink(tmp_path / "f.parquet", tmp_path / "link")
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    ours, theirs = LocalFiles(), LocalFileSystem()
    for name in ("d", "f.parquet", "link", "dangling", "missing", "d/"):
        path = str(tmp_path / name) + ("/" if name.endswith("/") else "")
        assert ours.exists(path) == theirs.exists(path) and ours.isdir(path) == theirs.isdir(path)
        if theirs.exists(path):
            assert ours.info(path) == theirs.info(path)
        assert ours._strip_protocol("file://" + path) == theirs._strip_protocol("file://" + path)
