"""Write the seed corpora: real column chunks and whole files from pyarrow over writer options, and rows.

    python fuzz/seeds.py fuzz/corpus
"""

from __future__ import annotations

import itertools
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def files(directory: str) -> list:
    rng = np.random.default_rng(0)
    out = []
    options = itertools.product(["snappy", "zstd", "none"], [True, False], ["1.0", "2.0"], [True, False], [True, False])
    for i, (codec, dictionary, version, checksum, nulls) in enumerate(options):
        n = int(rng.integers(1, 300))
        values = np.round(rng.lognormal(3, 1, n), int(rng.integers(0, 3)))
        mask = rng.random(n) < 0.2 if nulls else None
        table = pa.table({"actual": pa.array(values, mask=mask), "prediction": pa.array(values[::-1] * 1.1)})
        path = os.path.join(directory, f"file-{i:03d}.parquet")
        pq.write_table(table, path, compression=codec, use_dictionary=dictionary, data_page_version=version,
                       write_page_checksum=checksum, data_page_size=int(rng.choice([64, 512, 1 << 20])),
                       row_group_size=int(rng.choice([7, 100, 1000])))
        out.append(path)
    return out


def chunks(paths: list, directory: str) -> None:
    """The first column chunk of each file, prefixed by the harness's 2 option bytes."""
    for i, path in enumerate(paths):
        parquet = pq.ParquetFile(path)
        column = parquet.metadata.row_group(0).column(0)
        start = column.dictionary_page_offset or column.data_page_offset
        with open(path, "rb") as handle:
            handle.seek(start)
            chunk = handle.read(column.total_compressed_size)
        codec = {"SNAPPY": 1, "ZSTD": 2}.get(column.compression, 0)  # the harness's codec byte
        level = parquet.schema.column(0).max_definition_level
        with open(os.path.join(directory, f"chunk-{i:03d}"), "wb") as handle:
            handle.write(bytes([codec, level]) + chunk)


def records(directory: str) -> None:
    """Rows for the consumers' harness: 2 option bytes, then 17-byte (actual, prediction, slice) records.

    Ordinary losses, exact ties, values near the consumers' range edges (2**480, 2**-480),
    subnormals, infinities and NaN, so the fuzzer starts from every branch.
    """
    rng = np.random.default_rng(1)
    edges = [0.0, -0.0, 1.0, 0.1, 2.0 ** 479, 2.0 ** 480, 2.0 ** -480, 2.0 ** -479, 5e-324, 1e308,
             float("inf"), float("nan")]
    for i in range(24):
        n = int(rng.integers(1, 200))
        actual = np.round(rng.lognormal(2, 2, n), int(rng.integers(0, 4)))
        prediction = actual * rng.normal(1, 0.2, n)
        if i % 3 == 0:  # some rows from the edges
            picks = rng.integers(0, n, size=min(n, 4))
            actual[picks] = rng.choice(edges, size=len(picks))
        rows = np.zeros(n, dtype=np.dtype([("a", "<f8"), ("p", "<f8"), ("g", "u1")]))
        rows["a"], rows["p"], rows["g"] = actual, prediction, rng.integers(0, 256, n)
        options = bytes([i % 6, int(rng.integers(0, 256))])
        with open(os.path.join(directory, f"rows-{i:03d}"), "wb") as handle:
            handle.write(options + rows.tobytes() + bytes(rng.integers(0, 256, 5, dtype=np.uint8)))


def main(root: str) -> None:
    for sub in ("scan", "pages", "consumers"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    paths = files(os.path.join(root, "scan"))
    chunks(paths, os.path.join(root, "pages"))
    records(os.path.join(root, "consumers"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus"))
