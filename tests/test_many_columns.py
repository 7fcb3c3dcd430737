"""Any number of DOUBLE columns read at once: the decoder gives each its own buffers.

Regression: columns were decoded in groups of 8 and the recycled output arrays were indexed by
the position inside the group, so the 9th column overwrote the 1st (a silently wrong MAE as soon
as actual, prediction, weight, baseline, ``by`` and filter columns reached nine DOUBLE columns).
Ground truth: pyarrow's own read (bit for bit) and exact Fraction arithmetic over it.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem
from helpers import exact_mae

import l1stream
from l1stream.engine.scan import open_parquet
from l1stream.parquet import pages

native = pytest.mark.skipif(not pages.native_decoder_enabled(), reason="the C page decoder is not built")

WIDTHS = [1, 2, 7, 8, 9, 16, 17, 20]


def write_columns(path, n_columns: int, rows: int = 3000, row_group_size: int = 1000, nulls: bool = False,
                  seed: int = 7) -> dict:
    rng = np.random.default_rng(seed + n_columns)
    columns = {}
    for i in range(n_columns):
        values = np.round(rng.lognormal(3 + i, 0.5, rows), 3)  # every column differs in scale
        mask = (rng.random(rows) < 0.1) if nulls else None
        columns[f"c{i}"] = pa.array(values, mask=mask)
    pq.write_table(pa.table(columns), str(path), row_group_size=row_group_size)
    return columns


class StrictReader(pages.NativeRowGroups):
    def _reread(self, index, exc):
        raise AssertionError(f"the decoder gave up on row group {index}: {exc}")


@native
@pytest.mark.parametrize("reuse", [False, True])
@pytest.mark.parametrize("n_columns", WIDTHS)
@pytest.mark.parametrize("nulls", [False, True])
def test_every_column_is_its_own_bit_for_bit(tmp_path, n_columns, reuse, nulls):
    path = tmp_path / "wide.parquet"
    write_columns(path, n_columns, nulls=nulls)
    names = [f"c{i}" for i in range(n_columns)]
    fs = LocalFileSystem()
    parquet = open_parquet(str(path), fs)
    reader = StrictReader(parquet, str(path), fs, names, reuse=reuse)
    expected = pq.ParquetFile(str(path))
    try:
        for index in range(parquet.metadata.num_row_groups):
            chunks = reader.read(index, 1 << 20)
            assert chunks is not None, "the decoder must take flat DOUBLE columns"
            want = expected.read_row_group(index, columns=names)
            for _, table in chunks:  # with reuse, a chunk is checked before the next is read
                for name in names:
                    assert table.column(name).to_pylist() == want.column(name).to_pylist(), name
    finally:
        reader.close()
        parquet.close()


@pytest.mark.parametrize("n_filters", [0, 6, 7, 8, 15, 18])
def test_mae_is_exact_with_many_double_filter_columns(tmp_path, n_filters):
    """actual, prediction, weight, baseline plus filter columns: 4 + n_filters DOUBLE columns."""
    rng = np.random.default_rng(n_filters)
    rows = 5000
    table = {"actual": np.round(rng.lognormal(10, 1, rows), 2), "prediction": np.round(rng.lognormal(10, 1, rows), 2),
             "w": np.round(rng.random(rows) + 0.5, 3), "base": np.round(rng.lognormal(10, 1, rows), 2)}
    for i in range(n_filters):
        table[f"f{i}"] = rng.random(rows)
    pq.write_table(pa.table(table), str(tmp_path / "part.parquet"), row_group_size=1000)
    # each filter keeps most rows; together they keep a mix that depends on every column
    filters = [f"f{i}>=0.05" for i in range(n_filters)]
    keep = np.ones(rows, dtype=bool)
    for i in range(n_filters):
        keep &= table[f"f{i}"] >= 0.05
    result = l1stream.evaluate(str(tmp_path), weight="w", filters=filters, baseline_prediction="base")
    a, p, w, b = (table[k][keep].tolist() for k in ("actual", "prediction", "w", "base"))
    assert result.count == int(keep.sum())
    assert result.mae == exact_mae(a, p, w)
    assert result.baseline_mae == exact_mae(a, b, w)
    total = sum(Fraction(wi) * (abs(Fraction(x) - Fraction(y)) - abs(Fraction(x) - Fraction(z)))
                for x, y, z, wi in zip(a, p, b, w))
    assert result.difference == float(total / sum(Fraction(wi) for wi in w))


def test_mae_is_exact_when_actual_and_prediction_come_after_eight_doubles(tmp_path):
    """The evaluated columns at positions 9 and 10 of the read."""
    rng = np.random.default_rng(3)
    rows = 2000
    cols = {f"g{i}": rng.random(rows) for i in range(8)}
    cols["actual"] = np.round(rng.lognormal(5, 1, rows), 2)
    cols["prediction"] = np.round(rng.lognormal(5, 1, rows), 2)
    pq.write_table(pa.table(cols), str(tmp_path / "x.parquet"), row_group_size=500)
    result = l1stream.evaluate(str(tmp_path), filters=[f"g{i}<=2" for i in range(8)])
    assert result.count == rows
    assert result.mae == exact_mae(cols["actual"], cols["prediction"])
