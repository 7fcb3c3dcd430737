"""l1stream's own footer reading (parquet/metadata.py, _metadata.h) against pyarrow's, field by field.

Every file l1stream's walk reads must read as pyarrow reads it (schema leaves and levels, top-level
names, each row group's rows, each chunk's type, codec, encodings, value count and byte ranges);
every file it does not read (None) is left to pyarrow.  Inputs: the public parquet-testing corpus,
the fuzzing regressions, files written by pyarrow (flat, nested, every codec and page version),
Polars, DuckDB and fastparquet, and damaged footers (hypothesis) that pyarrow still opens.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import examples
from services import need_native_decoder

from l1stream.parquet.metadata import read_footer

need_native_decoder()

DATA = Path(__file__).parent / "data"
CORPUS = sorted(p for p in DATA.rglob("*.parquet*") if p.read_bytes()[-4:] == b"PAR1")


def footer_of(data: bytes) -> bytes:
    length = int.from_bytes(data[-8:-4], "little")
    return data[-8 - length:-8]


def pyarrow_view(data: bytes):
    """What pyarrow reads of the same footer, in the terms read_footer uses."""
    parquet = pq.ParquetFile(io.BytesIO(data))
    meta, schema = parquet.metadata, parquet.metadata.schema
    leaves = [(schema.column(i).path, schema.column(i).physical_type, schema.column(i).max_definition_level,
               schema.column(i).max_repetition_level) for i in range(len(schema))]
    groups = []
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        chunks = []
        for j in range(group.num_columns):
            c = group.column(j)
            chunks.append((c.physical_type, c.compression, tuple(c.encodings), c.num_values, c.data_page_offset,
                           c.has_dictionary_page, c.dictionary_page_offset if c.has_dictionary_page else None,
                           c.total_compressed_size))
        groups.append((group.num_rows, chunks))
    return leaves, list(parquet.schema_arrow.names), groups


def our_view(found):
    leaves = [(leaf.path, leaf.physical_type, leaf.max_definition_level, leaf.max_repetition_level)
              for leaf in found.schema.leaves]
    groups = [(g.num_rows, [(c.physical_type, c.compression, c.encodings, c.num_values, c.data_page_offset,
                             c.has_dictionary_page, c.dictionary_page_offset, c.total_compressed_size)
                            for c in g.columns]) for g in found.row_groups]
    return leaves, list(found.schema.names), groups


def assert_same(data: bytes) -> bool:
    """True when our walk read the footer (and it equals pyarrow's reading); False when it declined."""
    found = read_footer(footer_of(data))
    if found is None:
        return False
    assert our_view(found) == pyarrow_view(data)
    return True


def pyarrow_reads(data: bytes) -> bool:
    from l1stream.errors import BadFileError
    from l1stream.parquet.footer import check_footer

    try:
        check_footer(data, "corpus.parquet")  # pyarrow's accessors abort the process on what this refuses
        pyarrow_view(data)
    except (BadFileError, OSError, ValueError):  # refused: no reading of ours is used then
        return False
    return True


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_the_corpus_reads_as_pyarrow_reads_it(path):
    data = path.read_bytes()
    if pyarrow_reads(data):
        assert_same(data)


def test_the_walk_reads_the_corpus_files_pyarrow_reads():
    readable = [p.read_bytes() for p in CORPUS if pyarrow_reads(p.read_bytes())]
    read = sum(assert_same(data) for data in readable)
    assert read >= len(readable) - 2, (read, len(readable))  # it declines only what it must


def _bytes(table: pa.Table, **options) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def _table(n: int = 5000) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table({"actual": rng.lognormal(3, 1, n), "prediction": pa.array(rng.lognormal(3, 1, n),
                                                                              mask=rng.random(n) < 0.1),
                     "model": rng.choice(["a", "b"], n), "k": np.arange(n, dtype=np.int32),
                     "nested": pa.array([{"x": [1.0, 2.0], "y": None}] * n),
                     "m": pa.array([[("a", 1)]] * n, pa.map_(pa.string(), pa.int64()))})


@pytest.mark.parametrize("options", [{}, {"compression": "zstd"}, {"compression": "none", "data_page_version": "2.0"},
                                     {"use_dictionary": False, "row_group_size": 700},
                                     {"compression": "lz4", "write_statistics": False},
                                     {"column_encoding": {"actual": "BYTE_STREAM_SPLIT"}, "use_dictionary": ["model"]},
                                     {"write_page_index": True, "write_page_checksum": True}],
                         ids=str)
def test_pyarrow_files_read_alike(options):
    assert assert_same(_bytes(_table(), **options))


def test_other_writers_files_read_alike(tmp_path):
    import duckdb
    import polars as pl

    table = _table(3000).select(["actual", "prediction", "model", "k"])
    pl.from_arrow(table).write_parquet(tmp_path / "polars.parquet", row_group_size=1000)
    con = duckdb.connect()
    con.register("t", table)
    con.execute(f"COPY t TO '{tmp_path / 'duckdb.parquet'}' (FORMAT parquet, ROW_GROUP_SIZE 1000)")
    con.execute(f"COPY t TO '{tmp_path / 'duckdb2.parquet'}' (FORMAT parquet, PARQUET_VERSION V2)")
    con.close()
    import fastparquet

    fastparquet.write(str(tmp_path / "fastparquet.parquet"), table.to_pandas(), row_group_offsets=1000)
    for name in ("polars", "duckdb", "duckdb2", "fastparquet"):
        assert assert_same((tmp_path / f"{name}.parquet").read_bytes()), name


DAMAGED = """
import io, random, sys
sys.path.insert(0, sys.argv[1])
from test_metadata import _bytes, _table, footer_of, our_view, pyarrow_view
from l1stream.parquet.footer import footer_risks, problem
from l1stream.parquet.metadata import read_footer
raw = _bytes(_table(300), row_group_size=100)
rng = random.Random(int(sys.argv[2]))
compared = 0
for _ in range(int(sys.argv[3])):
    footer = bytearray(footer_of(raw))
    for _ in range(rng.randint(1, 4)):
        footer[rng.randrange(len(footer))] = rng.randrange(256)
    damaged = raw[:len(raw) - 8 - len(footer)] + bytes(footer) + raw[-8:]
    try:
        if problem(footer_risks(bytes(footer))):  # what l1stream checks before pyarrow's accessors (without
            continue                              # the child probe for what the walk cannot read, for speed)
        expected = pyarrow_view(damaged)
    except Exception:  # refused by the check, or by pyarrow (any of its exceptions): nothing to compare
        continue
    found = read_footer(bytes(footer))
    if found is not None:
        assert our_view(found) == expected, (bytes(footer).hex(), our_view(found), expected)
        compared += 1
print(compared)
"""


def test_damaged_footers_pyarrow_opens_read_alike_or_are_left_to_it():
    """Bytes of a footer flipped at random (seeded): where pyarrow still reads it (after l1stream's
    footer check, which keeps pyarrow from aborting), our walk reads the same or declines.  In a
    child process: should pyarrow abort on a footer the check let through, that is a finding too."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", DAMAGED, str(Path(__file__).parent), "7", str(examples(400))],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip().splitlines()[-1]) > 0  # some damaged footers were read alike, not all refused


def test_a_footer_pyarrow_s_thrift_refuses_is_not_read():
    """A required field missing in a struct neither reader otherwise uses (an encoding statistic's
    encoding, found by fuzzing): Thrift's generated code refuses the whole footer, so must we."""
    data = (DATA / "fuzz-regressions" / "scan" / "encoding-stats-missing-a-required-field.parquet").read_bytes()
    with pytest.raises(OSError, match="Invalid data"):
        pq.ParquetFile(io.BytesIO(data))
    assert read_footer(footer_of(data)) is None
