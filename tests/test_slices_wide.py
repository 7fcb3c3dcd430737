"""``by`` over wide key spaces: every slice exists in the data, none is merged or invented.

Regression: the combined slice code of several high-cardinality keys overflowed int64 in the
scan, so keys decoded from the wrapped code named slices that appear nowhere in the data
(counts still added up).  Oracle: a pandas groupby (nulls kept as their own key) with exact
integer sums, divided once (Python's int / int is correctly rounded).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import l1stream


def oracle(frame: pd.DataFrame, by: list) -> dict:
    frame = frame.assign(loss=(frame["actual"] - frame["prediction"]).abs())
    sums = frame.groupby(by, dropna=False, sort=False)["loss"].agg(["sum", "count"])
    out = {}
    for key, row in sums.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        key = tuple(None if (isinstance(k, float) and np.isnan(k)) or k is pd.NA else k for k in key)
        out[key] = (int(row["sum"]) / int(row["count"]), int(row["count"]))
    return out


def result_slices(result, by: list) -> dict:
    groups = result.groups
    out = {}
    for row in groups.itertuples(index=False):
        values = row._asdict()
        key = tuple(None if pd.isna(values[k]) else values[k] for k in by)
        out[key] = (values["mae"], values["count"])
    return out


def normalise(key):
    return tuple(int(k) if isinstance(k, (np.integer,)) else k for k in key)


def compare(result, frame, by):
    got = {normalise(k): v for k, v in result_slices(result, by).items()}
    want = {normalise(k): v for k, v in oracle(frame, by).items()}
    invented = set(got) - set(want)
    assert not invented, f"{len(invented)} slices that appear nowhere in the data, e.g. {sorted(invented, key=str)[:3]}"
    assert set(want) == set(got)
    assert got == want


@pytest.mark.parametrize("chunk_rows", [1 << 20, 3_333])
def test_high_cardinality_int_keys_whose_code_space_overflows_int64(tmp_path, chunk_rows):
    """Six keys of ~12,000 distinct values each in one chunk: 12,001**6 > 2**63."""
    rng = np.random.default_rng(20)
    rows = 12_000
    frame = pd.DataFrame({f"k{i}": rng.integers(0, 10**9, rows) for i in range(6)})
    frame["actual"] = rng.integers(0, 10**6, rows)
    frame["prediction"] = rng.integers(0, 10**6, rows)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), str(tmp_path / "one.parquet"))
    by = [f"k{i}" for i in range(6)]
    result = l1stream.evaluate(str(tmp_path), by=by, chunk_rows=chunk_rows)
    assert result.count == rows
    compare(result, frame, by)


def test_many_keys_of_mixed_types_with_nulls_over_many_files(tmp_path):
    rng = np.random.default_rng(21)
    rows = 12_000
    frame = pd.DataFrame({
        "user": pd.array(rng.integers(0, 10**7, rows), dtype="Int64"),
        "city": pd.array(rng.choice([f"c{i}" for i in range(3_000)], rows), dtype="string"),
        "item": pd.array(rng.integers(-10**12, 10**12, rows), dtype="Int64"),
        "shop": pd.array(rng.integers(0, 10**7, rows), dtype="Int64"),
        "day": pd.array(rng.integers(0, 30_000, rows), dtype="Int64"),
    })
    for name in ("user", "city", "shop"):
        frame.loc[rng.random(rows) < 0.05, name] = pd.NA
    frame["actual"] = rng.integers(-1000, 1000, rows)
    frame["prediction"] = rng.integers(-1000, 1000, rows)
    for i, part in enumerate(np.array_split(np.arange(rows), 6)):
        table = pa.Table.from_pandas(frame.iloc[part], preserve_index=False)
        pq.write_table(table, str(tmp_path / f"part-{i}.parquet"), row_group_size=1_000)
    by = ["user", "city", "item", "shop", "day"]
    result = l1stream.evaluate(str(tmp_path), by=by, chunk_rows=700)
    assert result.count == rows
    compare(result, frame.astype(object).where(frame.notna(), None).astype(
        {"actual": "int64", "prediction": "int64"}), by)


def test_two_keys_still_split_exactly(tmp_path):
    """The ordinary case keeps working: a hand-checked example."""
    table = pa.table({"m": ["a", "a", "b", None], "d": [1, 2, 1, 1], "actual": [1.0, 2.0, 3.0, 4.0],
                      "prediction": [0.0, 0.0, 0.0, 0.0]})
    pq.write_table(table, str(tmp_path / "x.parquet"))
    got = result_slices(l1stream.evaluate(str(tmp_path), by=["m", "d"]), ["m", "d"])
    assert {normalise(k): v for k, v in got.items()} == {("a", 1): (1.0, 1), ("a", 2): (2.0, 1),
                                                         ("b", 1): (3.0, 1), (None, 1): (4.0, 1)}


def test_key_combinations_whose_codes_collide_modulo_2_64_stay_apart(tmp_path):
    """Nine keys: eight of 255 distinct values (255 + a null code = 2**8 each), so the first key's
    factor in a combined code is 2**64: without renumbering, rows that differ only in the first key
    wrap to the same int64 code and their slices merge (counts add up, MAEs are wrong)."""
    rows = 510
    base = np.arange(rows) % 255
    frame = pd.DataFrame({"k0": np.arange(rows) // 255, **{f"k{i}": (base * 7 + i) % 255 for i in range(1, 9)}})
    frame["actual"] = np.arange(rows, dtype=np.int64) * 3
    frame["prediction"] = np.zeros(rows, dtype=np.int64)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), str(tmp_path / "nine.parquet"))
    by = [f"k{i}" for i in range(9)]
    result = l1stream.evaluate(str(tmp_path), by=by)
    assert len(result.groups) == rows  # every row its own slice
    compare(result, frame, by)


@pytest.mark.parametrize("distinct, rows", [(1, 0), (1, 7), (11, 131_072), (300, 5_001), (70_000, 10_000)])
def test_code_counts_are_numpy_s_bincount(distinct, rows):
    """The C counting of slice codes (``code_counts``) against ``numpy.bincount``; a code outside
    ``[0, distinct)`` is a ValueError naming its row, as numpy refuses it."""
    from services import need_native_decoder

    need_native_decoder()
    from l1stream.exact._kernel import code_counts

    codes = np.random.default_rng(distinct).integers(0, distinct, rows).astype(np.int64)
    counted = np.frombuffer(code_counts(codes, distinct), dtype=np.int64)
    assert np.array_equal(counted, np.bincount(codes, minlength=distinct))
    if rows:
        for bad in (-1, distinct, 1 << 40):
            broken = codes.copy()
            broken[rows // 2] = bad
            with pytest.raises(ValueError, match=f"row {rows // 2} has a code outside"):
                code_counts(broken, distinct)
