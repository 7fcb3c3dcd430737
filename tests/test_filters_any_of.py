"""OR-of-ANDs filters (pyarrow's list-of-lists form) and pyarrow Expressions, on partition keys and
columns, against an exact oracle over the same rows; pruning never drops a file that could match,
and the state store never reuses states computed under other such filters."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from helpers import write_parquet

import l1stream
from l1stream.errors import UsageError


@pytest.fixture(scope="module")
def hive(tmp_path_factory):
    rng = np.random.default_rng(11)
    root = tmp_path_factory.mktemp("hive")
    rows = []
    for day in (1, 2, 3):
        for model in ("v1", "v2"):
            a, p = rng.normal(100, 10, 400), rng.normal(100, 10, 400)
            seg = rng.choice(["x", "y", None], 400).tolist()
            write_parquet(root / f"date=2026-11-0{day}" / f"model={model}" / "part.parquet", 100,
                          actual=a, prediction=p, seg=pa.array(seg, pa.string()))
            rows += [(dt.date(2026, 11, day), model, s, x, y) for s, x, y in zip(seg, a, p)]
    return str(root), rows


def truth(rows, keep):
    kept = [(x, y) for d, m, s, x, y in rows if keep(d, m, s)]
    value = sum(abs(Fraction(x) - Fraction(y)) for x, y in kept) / len(kept)
    return value.numerator / value.denominator, len(kept)


D2 = dt.date(2026, 11, 2)
CASES = [
    ([[("model", "==", "v1"), ("date", ">=", "2026-11-02")], [("seg", "==", "x"), ("model", "==", "v2")]],
     lambda d, m, s: (m == "v1" and d >= D2) or (s == "x" and m == "v2"), 5),
    ([["seg in x,y", "date==2026-11-01"], ["seg not in x"]],
     lambda d, m, s: (s in ("x", "y") and d == dt.date(2026, 11, 1)) or (s is not None and s != "x"), 6),
    ((pc.field("model") == "v1") | (pc.field("seg") == "y"), lambda d, m, s: m == "v1" or s == "y", 6),
    (["date<=2026-11-02", (pc.field("date") > pa.scalar(dt.date(2026, 11, 1))) & ~pc.field("seg").is_null()],
     lambda d, m, s: d == D2 and s is not None, 4),
    ([[("model", "==", "v2")]], lambda d, m, s: m == "v2", 3),  # one group: a plain AND list
]


@pytest.mark.parametrize("filters, keep, files", CASES)
def test_or_of_ands_and_expressions_are_exact(hive, filters, keep, files):
    root, rows = hive
    result = l1stream.evaluate(root, filters=filters, chunk_rows=150)
    assert (result.mae, result.count) == truth(rows, keep)
    assert result.files_selected == files  # pruning by partition keys where a group allows it, never more


def test_on_frames_too(hive):
    root, rows = hive
    frame = pd.DataFrame(rows, columns=["date", "model", "seg", "actual", "prediction"])
    filters, keep, _ = CASES[0]
    for source in (frame, pa.Table.from_pandas(frame), pl.from_pandas(frame).lazy()):
        result = l1stream.evaluate(source, filters=filters, chunk_rows=500)
        assert (result.mae, result.count) == truth(rows, keep)
    result = l1stream.evaluate(pl.from_pandas(frame), filters=CASES[2][0])
    assert (result.mae, result.count) == truth(rows, CASES[2][1])


def test_the_store_keeps_states_apart_by_expression(hive, tmp_path):
    root, rows = hive
    store = str(tmp_path / "store")
    for filters, keep, _ in CASES[:3] + CASES[:3]:
        result = l1stream.evaluate(root, filters=filters, store=store)
        assert (result.mae, result.count) == truth(rows, keep)
    assert result.fragments["reused"] == 6 and result.fragments["read"] == 0


def test_bad_expressions_and_groups_name_the_problem(hive):
    root, _ = hive
    with pytest.raises(UsageError, match=r"filter expression '\(nope == 1\)' does not apply to this data .*"
                                         r"its columns and partition keys: date, model, actual, prediction, seg"):
        l1stream.evaluate(root, filters=pc.field("nope") == 1)
    with pytest.raises(UsageError, match=r"filter 'modl==v1' names column 'modl'.*did you mean 'model'"):
        l1stream.evaluate(root, filters=[[("modl", "==", "v1")], [("seg", "==", "x")]])
    with pytest.raises(UsageError, match=r"a list of such lists \(any may hold\) or a pyarrow expression"):
        l1stream.evaluate(root, filters=[[1, 2]])
