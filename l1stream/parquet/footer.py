"""Check a Parquet footer before pyarrow's metadata accessors see it.

pyarrow (25-26) can abort the whole process (a C++ exception, ``terminate``, exit 134) from
``RowGroupMetaData.column(i)`` and friends on files with encrypted columns under a plaintext
footer, an unknown codec number, or column chunk metadata that contradicts the schema (a chunk's
type, its level histograms, byte-array sizes on another type; ``.statistics`` of a chunk whose type
is not its column's): no ``except`` can catch that, and ``on_bad_file="skip"`` cannot save a
process that died.  So the footer's Thrift (compact protocol) is walked here first, just far
enough to find those cases, and such a file is a clean, located
:class:`~l1stream.errors.BadFileError` instead.  The walk runs in C (``_footer.h``, 20x faster on
footers of many row groups) when the page decoder is built, in Python (:func:`footer_risks`)
otherwise; tests check that the two agree.

>>> check_footer(b"PAR1" + bytes(4) + b"PAR1", "x.parquet")  # too short to hold metadata: pyarrow decides
"""

from __future__ import annotations

from l1stream.errors import BadFileError

try:
    from l1stream.parquet._pages import footer_risks as _compiled_footer_risks
except ImportError:  # the optional C extension is not built
    _compiled_footer_risks = None

KNOWN_CODECS = frozenset(range(8))  # UNCOMPRESSED, SNAPPY, GZIP, LZO, BROTLI, LZ4, ZSTD, LZ4_RAW
TAIL_BYTES = 1 << 16  # read at once from the end of a file: the footer of most files fits


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = value = 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def i32(self) -> int:
        v = self.varint() & 0xFFFFFFFF
        return (v >> 1) ^ -(v & 1)

    def fields(self):
        """``(id, type)`` of each field of a struct, int16 id arithmetic as Thrift C++ does."""
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return
            delta, kind = head >> 4, head & 15
            if delta:
                last = (last + delta) & 0xFFFF
            else:
                last = self.i32() & 0xFFFF
            yield (last - 0x10000 if last & 0x8000 else last), kind

    def list_header(self) -> tuple:
        head = self.byte()
        size = head >> 4
        if size == 15:
            size = self.varint()
        return size, head & 15

    def skip(self, kind: int, depth: int = 0) -> None:
        if depth > 64:
            raise ValueError("nesting too deep")
        if kind in (1, 2):
            return
        if kind == 3:
            self.pos += 1
        elif kind in (4, 5, 6):
            self.varint()
        elif kind == 7:
            self.pos += 8
        elif kind == 8:
            length = self.varint()  # read before pos is: `self.pos += self.varint()` would lose the varint
            self.pos += length
        elif kind in (9, 10):
            size, inner = self.list_header()
            for _ in range(size):
                if inner in (1, 2):
                    self.pos += 1
                else:
                    self.skip(inner, depth + 1)
        elif kind == 11:
            size = self.varint()
            if size:
                kinds = self.byte()
                for _ in range(size):
                    self.skip(kinds >> 4, depth + 1)
                    self.skip(kinds & 15, depth + 1)
        elif kind == 12:
            for _, inner in self.fields():
                self.skip(inner, depth + 1)
        else:
            raise ValueError(f"unknown Thrift type {kind}")
        if self.pos > len(self.data):
            raise IndexError("past the end")


MISMATCHES = {  # what a column chunk's metadata may contradict, as check_footer says it
    "type": "states physical type {stated} where the schema says {expected}",
    "repetition histogram": "holds a repetition-level histogram of {stated} entries where the column has {expected}",
    "definition histogram": "holds a definition-level histogram of {stated} entries where the column has {expected}",
    "byte array sizes": "states byte-array sizes, but the schema says physical type {expected}",
}
_BYTE_ARRAY = 6


def footer_risks(metadata: bytes) -> dict:
    """What in a serialized FileMetaData would make pyarrow abort: ``encryption`` (the footer names
    an encryption algorithm), ``encrypted_columns``, ``codecs`` (the codec numbers used) and
    ``mismatch``: the first column chunk whose metadata contradicts the schema, as
    ``(what, row group, column, stated, expected)`` (``what`` a key of :data:`MISMATCHES`), or None.

    Two passes, as the C twin: the schema's leaves (types and maximum levels from the tree of
    repetition types), then every column chunk against its leaf.
    """
    out: dict = {"encryption": False, "encrypted_columns": False, "codecs": set(), "mismatch": None}
    r = _Reader(metadata)
    leaves = None
    for fid, kind in r.fields():
        if fid == 2 and kind == 9:  # schema: list<SchemaElement>
            leaves = _schema_leaves(r)
        elif fid == 8 and kind == 12:  # encryption_algorithm
            out["encryption"] = True
            r.skip(kind)
        else:
            r.skip(kind)
    r = _Reader(metadata)
    for fid, kind in r.fields():
        if fid == 4 and kind == 9:  # row_groups: list<RowGroup>
            size, inner = r.list_header()
            if inner != 12:
                _skip_elements(r, size, inner)
                continue
            for index in range(size):
                _row_group(r, out, index, leaves)
        else:
            r.skip(kind)
    return out


def schema_leaves(metadata: bytes) -> list | None:
    """``(physical type, max definition level, max repetition level)`` of each leaf column of a
    serialized FileMetaData, as :func:`footer_risks` computes them (None: not readable here).

    >>> schema_leaves(b"\\x00")  # no schema at all
    """
    r = _Reader(metadata)
    leaves = None
    for fid, kind in r.fields():
        if fid == 2 and kind == 9:
            leaves = _schema_leaves(r)
        else:
            r.skip(kind)
    return leaves


def _skip_elements(r: _Reader, size: int, inner: int) -> None:
    for _ in range(size):
        if inner in (1, 2):
            r.pos += 1
        else:
            r.skip(inner, 1)


def _schema_leaves(r: _Reader) -> list | None:
    """``(type, max definition level, max repetition level)`` of each leaf, depth first; None when
    the tree cannot be read (then nothing is checked against it: pyarrow decides)."""
    size, inner = r.list_header()
    if inner != 12:
        _skip_elements(r, size, inner)
        return None
    leaves: list | None = []
    stack: list = []  # [children left, definition, repetition] per open group
    for index in range(size):
        element = {1: -1, 3: -1, 5: 0}  # type, repetition_type, num_children
        for fid, kind in r.fields():
            if kind == 5 and fid in element:
                element[fid] = r.i32()
            else:
                r.skip(kind)
        if leaves is None:
            continue
        if index == 0:  # the root: its repetition does not count
            stack = [[element[5], 0, 0]]
            continue
        while len(stack) > 1 and stack[-1][0] == 0:
            stack.pop()
        if not stack or stack[-1][0] <= 0:
            leaves = None  # more elements than the tree holds
            continue
        stack[-1][0] -= 1
        definition = stack[-1][1] + (element[3] in (1, 2))
        repetition = stack[-1][2] + (element[3] == 2)
        if element[5] > 0:
            if len(stack) > 64:
                leaves = None
                continue
            stack.append([element[5], definition, repetition])
        else:
            leaves.append((element[1], definition, repetition))
    if leaves is not None and any(left != 0 for left, _, _ in stack):
        return None  # fewer elements than the tree claims
    return leaves


def _row_group(r: _Reader, out: dict, index: int, leaves: list | None) -> None:
    for fid, kind in r.fields():
        if fid == 1 and kind == 9:  # columns: list<ColumnChunk>
            size, inner = r.list_header()
            if inner != 12:
                _skip_elements(r, size, inner)
                continue
            for column in range(size):
                for cid, ckind in r.fields():
                    if cid == 3 and ckind == 12:  # meta_data
                        facts = _column_meta(r, out)
                        if leaves is not None and column < len(leaves) and out["mismatch"] is None:
                            out["mismatch"] = _mismatch(facts, leaves[column], index, column)
                    elif cid in (8, 9):  # crypto_metadata, encrypted_column_metadata
                        out["encrypted_columns"] = True
                        r.skip(ckind)
                    else:
                        r.skip(ckind)
        else:
            r.skip(kind)


def _column_meta(r: _Reader, out: dict) -> dict:
    """Walk a ColumnMetaData: codecs into ``out``; the facts a chunk is checked by."""
    facts = {"type": -1, "repetition": 0, "definition": 0, "byte_array_sizes": False}
    for mid, mkind in r.fields():
        if mid == 1 and mkind == 5:
            facts["type"] = r.i32()
        elif mid == 4 and mkind == 5:
            out["codecs"].add(r.i32())
        elif mid == 16 and mkind == 12:  # size_statistics
            for sid, skind in r.fields():
                if sid == 1 and skind == 6:
                    r.varint()
                    facts["byte_array_sizes"] = True
                elif sid in (2, 3) and skind == 9:
                    length, inner = r.list_header()
                    _skip_elements(r, length, inner)
                    facts["repetition" if sid == 2 else "definition"] = length
                else:
                    r.skip(skind)
        else:
            r.skip(mkind)
    return facts


def _mismatch(facts: dict, leaf: tuple, row_group: int, column: int) -> tuple | None:
    """What pyarrow's ColumnChunkMetaData would throw on, from a chunk's facts and its leaf."""
    kind, definition, repetition = leaf
    if facts["type"] >= 0 and kind >= 0 and facts["type"] != kind:
        return "type", row_group, column, facts["type"], kind
    if facts["repetition"] and facts["repetition"] != repetition + 1:
        return "repetition histogram", row_group, column, facts["repetition"], repetition + 1
    if facts["definition"] and facts["definition"] != definition + 1:
        return "definition histogram", row_group, column, facts["definition"], definition + 1
    if facts["byte_array_sizes"] and kind != _BYTE_ARRAY:
        return "byte array sizes", row_group, column, 1, kind
    return None


def check_footer(tail: bytes, path: str, more=None) -> bytes | None:
    """Raise :class:`BadFileError` for a footer pyarrow would abort on (see the module doc); return
    the footer (the serialized FileMetaData) when the file holds one whole, else None.

    ``tail`` is the end of the file (at least the footer's length and the magic bytes); ``more(n)``,
    if given, returns the file's last ``n`` bytes, for a footer longer than ``tail``.  A footer this
    walk cannot read (damaged Thrift that pyarrow's parser may still take) is handed to pyarrow in a
    child process first (:func:`aborts_pyarrow`): if pyarrow dies on it there, it is an error here.
    """
    if len(tail) < 12:
        return None
    if tail[-4:] == b"PARE":
        raise BadFileError(path=path, problem="an encrypted Parquet file (encrypted footer), which l1stream cannot "
                                              "decrypt", remedy="read it with the keys and write a plain copy")
    if tail[-4:] != b"PAR1":
        return None
    length = int.from_bytes(tail[-8:-4], "little")
    if length <= 0:
        return None
    if length + 8 > len(tail):
        tail = more(length + 8) if more is not None else b""
        if len(tail) < length + 8:
            return None  # a footer longer than the file: pyarrow's own error names it
    metadata = tail[-8 - length:-8]
    try:
        risks = (_compiled_footer_risks or footer_risks)(metadata)
    except (IndexError, ValueError):
        if aborts_pyarrow(metadata):
            raise BadFileError(path=path, problem="a damaged footer, on which the Parquet library (pyarrow) aborts "
                                                  "the process", remedy="rewrite the file") from None
        return metadata  # not readable here, harmless to pyarrow: its own error (or reading) decides
    found = problem(risks)
    if found is not None:
        raise BadFileError(path=path, problem=found[0], remedy=found[1])
    return metadata


def without_key_values(metadata: bytes) -> bytes | None:
    """The footer with its file-level key-value metadata emptied (``ARROW:schema`` and the rest), or
    None when there is none or the footer cannot be walked: for a file whose only damage is there.

    >>> without_key_values(bytes([0x59, 0x1C, 0x18, 0x01, 0x6B, 0x00, 0x00])).hex()  # field 5: [KeyValue('k')]
    '590c00'
    """
    r = _Reader(metadata)
    try:
        for fid, kind in r.fields():
            start = r.pos
            r.skip(kind)
            if fid == 5 and kind == 9:
                return metadata[:start] + bytes([0x0C]) + metadata[r.pos:]  # an empty list of structs
    except (IndexError, ValueError):
        return None
    return None


def problem(risks: dict) -> tuple | None:
    """``(problem, remedy)`` for the risks :func:`footer_risks` found that pyarrow would abort on, or None.

    >>> problem({"encryption": False, "encrypted_columns": False, "codecs": {1, 99}, "mismatch": None})
    ('compression codec number 99, which no Parquet reader here knows', 'rewrite the file with snappy or zstd')
    """
    if risks["encryption"] or risks["encrypted_columns"]:
        return ("encrypted columns (under a plaintext footer), which l1stream cannot decrypt",
                "read the file with the keys and write a plain copy")
    unknown = sorted(risks["codecs"] - KNOWN_CODECS)
    if unknown:
        return (f"compression codec number {unknown[0]}, which no Parquet reader here knows",
                "rewrite the file with snappy or zstd")
    if risks["mismatch"] is not None:
        what, row_group, column, stated, expected = risks["mismatch"]
        return (f"a damaged footer: in row group {row_group}, column chunk {column} "
                f"{MISMATCHES[what].format(stated=stated, expected=expected)}", "rewrite the file")
    return None


_PROBE = """
import sys
import pyarrow as pa, pyarrow.parquet as pq
metadata = sys.stdin.buffer.read()
try:
    meta = pq.ParquetFile(pa.BufferReader(b"PAR1" + metadata + len(metadata).to_bytes(4, "little") + b"PAR1")).metadata
except Exception:
    sys.exit(0)  # a clean error, which the reader's own pyarrow will raise too
for i in range(meta.num_row_groups):
    group = meta.row_group(i)
    for j in range(group.num_columns):
        try:
            group.column(j).to_dict()
        except Exception:
            pass
"""


_VERDICTS: dict = {}  # footer digest -> aborts_pyarrow's verdict (a job opens a file more than once)


def aborts_pyarrow(metadata: bytes, timeout: float = 120.0) -> bool:
    """Whether pyarrow's metadata accessors kill the process on this serialized FileMetaData, tried
    in a child interpreter (about 0.2 s, once per footer; only for footers :func:`footer_risks`
    cannot read, which files from real writers never are)."""
    import hashlib
    import subprocess
    import sys

    digest = hashlib.sha256(metadata).digest()
    if digest in _VERDICTS:
        return _VERDICTS[digest]
    try:
        child = subprocess.run([sys.executable, "-c", _PROBE], input=metadata, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False  # no verdict: as before, pyarrow decides
    verdict = child.returncode < 0 or child.returncode == 134
    if len(_VERDICTS) >= 1024:
        _VERDICTS.clear()
    _VERDICTS[digest] = verdict
    return verdict


_SIGNATURES = (  # leading bytes -> what the file is
    (b"\x1f\x8b", "a gzip-compressed file"), (b"PK\x03\x04", "a ZIP archive"), (b"ORC", "an ORC file"),
    (b"Obj\x01", "an Avro file"), (b"ARROW1", "an Arrow IPC (Feather) file"),
    (b"\xff\xff\xff\xff", "an Arrow IPC stream"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file"), (b"BZh", "a bzip2-compressed file"),
    (b"\x04\x22\x4d\x18", "an LZ4-compressed file"), (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x89HDF", "an HDF5 file"), (b"\x93NUMPY", "a numpy .npy file"),
)


def describe_foreign(head: bytes) -> str | None:
    """What a file that is not Parquet looks like from its first bytes (``None``: unknown).

    >>> describe_foreign(b"actual,prediction\\n1,2\\n")
    'a CSV file'
    >>> describe_foreign(b'{"actual": 1}\\n')
    'a JSON file'
    >>> describe_foreign(b"PAR1...") is None
    True
    """
    if not head or head.startswith(b"PAR1"):
        return None
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = head[:-3].decode("utf-8")  # a character cut at the end of the sample
        except UnicodeDecodeError:
            return None
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        return None
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped[:1] in "{[":
        return "a JSON file"
    lines = stripped.splitlines()
    if len(lines) > 1 and not stripped.endswith("\n"):
        lines = lines[:-1]  # the sample may end inside a line
    lines = [line for line in lines if line.strip()][:5]
    for delimiter, what in ((",", "a CSV file"), ("\t", "a tab-separated file"), (";", "a CSV file (;)"),
                            ("|", "a |-separated text file")):
        counts = {line.count(delimiter) for line in lines}
        if lines and len(counts) == 1 and counts != {0}:
            return what
    return "a text file"
