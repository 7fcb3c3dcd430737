"""The footer walk that keeps pyarrow from aborting the process: its C and Python twins agree.

Inputs: every footer of the public parquet-testing corpus copied into tests/data (encrypted
columns, unknown codecs and all), footers of files pyarrow writes, and those footers with bytes
flipped and cut (hypothesis): both walks give the same risks, or both call the footer unreadable.
Column chunks that contradict the schema are checked on footers written by hand (Thrift compact
bytes worked out from the format's definitions), and the schema walk's levels against pyarrow's
own column descriptors.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from services import need_native_decoder

from l1stream.parquet import footer

need_native_decoder()

DATA = Path(__file__).parent / "data"
FILES = sorted(p for p in (DATA / "parquet-testing").rglob("*") if p.is_file() and p.suffix != ".md"
               and p.name != "LICENSE.txt")
CORPUS = [p for p in FILES if p.read_bytes()[-4:] == b"PAR1"]  # a plaintext footer to walk


def metadata_of(data: bytes) -> bytes | None:
    if len(data) < 12 or data[-4:] != b"PAR1":
        return None
    length = int.from_bytes(data[-8:-4], "little")
    return data[-8 - length:-8] if 0 < length <= len(data) - 8 else None


def outcome(walk, metadata: bytes):
    try:
        risks = walk(metadata)
    except (IndexError, ValueError):
        return "unreadable"
    return risks["encryption"], risks["encrypted_columns"], frozenset(risks["codecs"]), risks["mismatch"]


def both(metadata: bytes):
    return outcome(footer.footer_risks, metadata), outcome(footer._compiled_footer_risks, metadata)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_c_and_python_agree_on_the_public_corpus(path):
    python, c = both(metadata_of(path.read_bytes()) or b"")
    assert python == c


def test_an_encrypted_footer_is_refused_by_name_before_any_walk():
    from l1stream.errors import BadFileError

    encrypted = [p for p in FILES if p.read_bytes()[-4:] == b"PARE"]
    assert encrypted
    for path in encrypted:
        with pytest.raises(BadFileError, match="encrypted footer"):
            footer.check_footer(path.read_bytes(), str(path))


def test_the_corpus_holds_the_cases_the_walk_exists_for():
    found = {outcome(footer.footer_risks, m) for m in map(metadata_of, (p.read_bytes() for p in CORPUS)) if m}
    assert any(r != "unreadable" and r[1] for r in found), "no file with encrypted columns"
    assert any(r != "unreadable" and {1, 6} & r[2] for r in found)


def _written(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("footer") / "f.parquet"
    table = pa.table({"a": [1.0, 2.0, None], "b": ["x", "y", "z"], "c": [[1], [2, 3], []]})
    writer = pq.ParquetWriter(str(path), table.schema, compression={"a": "zstd", "b": "snappy", "c": "gzip"})
    for _ in range(3):
        writer.write_table(table)
    writer.close()
    return metadata_of(path.read_bytes())


@settings(max_examples=examples(300), deadline=None)
@given(data=st.data())
def test_c_and_python_agree_on_damaged_footers(tmp_path_factory, data):
    metadata = bytearray(_FOOTER.setdefault("m", _written(tmp_path_factory)))
    assert {1, 6} <= both(bytes(metadata))[0][2]
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(metadata) - 1))
        metadata[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(metadata)))
    python, c = both(bytes(metadata[:cut]))
    assert python == c


_FOOTER: dict = {}


# --- column chunks that contradict the schema -------------------------------------------------------
# A hand-written Thrift compact encoder, just enough for FileMetaData: field headers are
# (id delta << 4) | type; i32/i64 are zigzag varints; lists a (size << 4) | element type byte.

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _zigzag(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def _struct(*fields) -> bytes:
    """fields: (id, type, encoded value) in increasing id; types 5 i32, 6 i64, 8 binary, 9 list, 12 struct."""
    out, last = bytearray(), 0
    for fid, kind, value in fields:
        out.append(((fid - last) << 4) | kind)
        out += value
        last = fid
    return bytes(out + b"\x00")


def _list(kind: int, items: list) -> bytes:
    return bytes([(len(items) << 4) | kind]) + b"".join(items)


def _binary(text: str) -> bytes:
    return _varint(len(text)) + text.encode()


def _footer(repetition: int, *, chunk_type: int = 5, definition: list | None = None, repetition_levels: list | None
            = None, byte_array_sizes: bool = False) -> bytes:
    """FileMetaData of DOUBLE columns x (repetition type 0 required, 1 optional; its chunk as asked) and y
    (required, a plain chunk), one row group."""
    root = _struct((3, 5, _zigzag(0)), (4, 8, _binary("schema")), (5, 5, _zigzag(2)))
    leaf = _struct((1, 5, _zigzag(5)), (3, 5, _zigzag(repetition)), (4, 8, _binary("x")))
    other = _struct((1, 5, _zigzag(5)), (3, 5, _zigzag(0)), (4, 8, _binary("y")))
    size_fields = []
    if byte_array_sizes:
        size_fields.append((1, 6, _zigzag(10)))
    if repetition_levels is not None:
        size_fields.append((2, 9, _list(6, [_zigzag(v) for v in repetition_levels])))
    if definition is not None:
        size_fields.append((3, 9, _list(6, [_zigzag(v) for v in definition])))
    def meta(name: str, kind: int) -> list:
        return [(1, 5, _zigzag(kind)), (2, 9, _list(5, [_zigzag(0)])), (3, 9, _list(8, [_binary(name)])),
                (4, 5, _zigzag(0)), (5, 6, _zigzag(0)), (6, 6, _zigzag(0)), (7, 6, _zigzag(0)), (9, 6, _zigzag(4))]

    first = meta("x", chunk_type)
    eight = _varint(8) + bytes(8)  # a double's statistics: 8 bytes each
    first.append((12, 12, _struct((3, 6, _zigzag(0)), (5, 8, eight), (6, 8, eight))))
    if size_fields:
        first.append((16, 12, _struct(*size_fields)))
    chunks = [_struct((2, 6, _zigzag(4)), (3, 12, _struct(*first))),
              _struct((2, 6, _zigzag(4)), (3, 12, _struct(*meta("y", 5))))]
    row_group = _struct((1, 9, _list(12, chunks)), (2, 6, _zigzag(0)), (3, 6, _zigzag(0)))
    return _struct((1, 5, _zigzag(1)), (2, 9, _list(12, [root, leaf, other])), (3, 6, _zigzag(0)),
                   (4, 9, _list(12, [row_group])))


MISMATCHED = {  # footer -> what both walks must report (worked out by hand from the definitions)
    "optional, histogram of 2": (_footer(1, definition=[0, 0]), None),
    "required, histogram of 1": (_footer(0, definition=[0]), None),
    "required, histogram of 2": (_footer(0, definition=[0, 0]), ("definition histogram", 0, 0, 2, 1)),
    "optional, histogram of 3": (_footer(1, definition=[0, 0, 0]), ("definition histogram", 0, 0, 3, 2)),
    "repetition histogram of 2, flat": (_footer(1, repetition_levels=[0, 0]), ("repetition histogram", 0, 0, 2, 1)),
    "chunk type INT64": (_footer(1, chunk_type=2), ("type", 0, 0, 2, 5)),
    "byte-array sizes on a double": (_footer(1, byte_array_sizes=True), ("byte array sizes", 0, 0, 1, 5)),
}


@pytest.mark.parametrize("case", MISMATCHED)
def test_chunks_contradicting_the_schema_are_found_by_both_walks(case):
    metadata, expected = MISMATCHED[case]
    python, c = both(metadata)
    assert python == c
    assert python[3] == expected


@pytest.mark.parametrize("case", [c for c in MISMATCHED if MISMATCHED[c][1] is not None])
def test_a_contradicting_chunk_is_a_located_error_where_pyarrow_would_abort(tmp_path, case):
    import subprocess
    import sys

    metadata = MISMATCHED[case][0]
    path = tmp_path / "damaged.parquet"
    path.write_bytes(b"PAR1" + metadata + len(metadata).to_bytes(4, "little") + b"PAR1")
    # pyarrow itself opens the file, then dies on the chunk's metadata (the reason for the walk)
    probe = "import pyarrow.parquet as pq, sys; m = pq.ParquetFile(sys.argv[1]).metadata.row_group(0).column(0); "
    probe += "print(m.statistics)"
    died = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True)
    assert died.returncode != 0
    got = subprocess.run([sys.executable, "-m", "l1stream", "mae", str(path), "--actual", "x", "--prediction", "y"],
                         capture_output=True, text=True)
    assert got.returncode == 3, got.stderr
    assert "a damaged footer: in row group 0, column chunk 0" in got.stderr
    assert "terminate called" not in got.stderr


NESTED = {
    "flat": pa.table({"a": pa.array([1.0, None]), "b": pa.array([1, 2], pa.int64())}),
    "required": pa.Table.from_arrays([pa.array([1.0, 2.0])], schema=pa.schema([pa.field("a", pa.float64(), False)])),
    "list": pa.table({"l": pa.array([[1.0], None, [None, 2.0]])}),
    "struct of lists": pa.table({"s": pa.array([{"x": [1], "y": "a"}, None, {"x": None, "y": None}])}),
    "map": pa.table({"m": pa.array([[("k", 1.0)], None], pa.map_(pa.string(), pa.float64()))}),
    "list of structs": pa.table({"ls": pa.array([[{"p": 1.0, "q": [1, 2]}], [], None])}),
}


@pytest.mark.parametrize("name", NESTED)
def test_the_schema_walk_computes_pyarrow_s_levels(tmp_path, name):
    path = tmp_path / "n.parquet"
    pq.write_table(NESTED[name], path)
    schema = pq.ParquetFile(path).schema
    expected = [(schema.column(i).physical_type, schema.column(i).max_definition_level,
                 schema.column(i).max_repetition_level) for i in range(len(schema))]
    names = {0: "BOOLEAN", 1: "INT32", 2: "INT64", 3: "INT96", 4: "FLOAT", 5: "DOUBLE", 6: "BYTE_ARRAY",
             7: "FIXED_LEN_BYTE_ARRAY"}
    metadata = metadata_of(path.read_bytes())
    leaves = footer.schema_leaves(metadata)
    assert [(names[t], d, r) for t, d, r in leaves] == expected
    assert both(metadata)[0][3] is None and both(metadata)[1][3] is None


def test_a_footer_this_walk_cannot_read_is_tried_on_pyarrow_in_a_child_first():
    """Damaged Thrift that pyarrow's generated parser still takes (it ignores a list's element type,
    which a generic walk must trust), then aborts on: found by fuzzing; the child's death is the verdict."""
    from l1stream.errors import BadFileError

    data = (DATA / "fuzz-regressions" / "scan" / "footer-pyarrow-reads-but-aborts-on.parquet").read_bytes()
    metadata = metadata_of(data)
    with pytest.raises((IndexError, ValueError)):
        footer.footer_risks(metadata)
    assert footer.aborts_pyarrow(metadata)
    with pytest.raises(BadFileError, match="aborts the process"):
        footer.check_footer(data, "damaged.parquet")
    # unreadable here and to pyarrow alike: no verdict from the child, pyarrow's own error decides later
    garbage = bytes([0x19, 0xFC, 0x00])
    assert not footer.aborts_pyarrow(garbage)
    footer.check_footer(b"PAR1" + garbage + len(garbage).to_bytes(4, "little") + b"PAR1", "garbage.parquet")


def test_a_footer_longer_than_the_first_read_is_read_whole_and_checked(tmp_path):
    """More than TAIL_BYTES of footer (many row groups): check_footer asks for the rest."""
    from l1stream.errors import BadFileError

    metadata = _footer(0, definition=[0, 0])  # a mismatch, padded past the first read by a long key
    assert both(metadata)[0][3] is not None
    padding = bytes(footer.TAIL_BYTES)
    data = padding + b"PAR1" + metadata + len(metadata).to_bytes(4, "little") + b"PAR1"
    short = data[-100:]
    footer.check_footer(short, "x.parquet")  # without a way to read more: pyarrow decides (as before)
    with pytest.raises(BadFileError, match="damaged footer"):
        footer.check_footer(short, "x.parquet", lambda n: data[-n:])
