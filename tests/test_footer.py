"""The footer walk that keeps pyarrow from aborting the process: its C and Python twins agree.

Inputs: every footer of the public parquet-testing corpus copied into tests/data (encrypted
columns, unknown codecs and all), footers of files pyarrow writes, and those footers with bytes
flipped and cut (hypothesis): both walks give the same risks, or both call the footer unreadable.
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
    return risks["encryption"], risks["encrypted_columns"], frozenset(risks["codecs"])


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
