"""Splitting a chunk by its slice columns: codes per row, then groups, exactly.

The combined code of several keys is a mixed-radix number (each key's dictionary size plus one, for
null); when it would overflow int64 the combinations seen so far are numbered densely first.  The
one-pass path (:func:`grouped_slices`) hands the codes to the compiled grouped kernel; the general
path (:func:`split_rows`) sorts the rows by group (weights, baselines, or no compiled kernel).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from l1stream.exact.native import code_counts
from l1stream.exact.state import grouped_chunk_states


def slice_groups(table: pa.Table, piece, spec):
    """``(slice key, rows)`` of a chunk: partition keys from the piece, the rest split by column."""
    base_key = tuple(piece.partition.get(k) for k in spec.by)
    if not spec.data_by:
        return [(base_key, table)]
    return split_rows(table, spec.by, spec.data_by, base_key)


_CODE_LIMIT = 1 << 62  # combined slice codes stay below this (int64)


def _codes_with_nulls_last(indices: pa.Array, null_code: int) -> np.ndarray:
    """Dictionary indices as int64, nulls as ``null_code``, from the buffers (pyarrow's fill_null
    would import pandas: 0.25 s of start-up for a CLI run by a slice column).

    >>> _codes_with_nulls_last(pa.array([2, None, 0], pa.int32()), 3).tolist()
    [2, 3, 0]
    """
    width = indices.type.bit_width // 8
    bitmap, data = indices.buffers()[:2]
    values = np.frombuffer(data, dtype=f"<i{width}", count=len(indices), offset=indices.offset * width)
    codes = values.astype(np.int64)
    if indices.null_count:
        valid = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
        codes[valid[indices.offset:indices.offset + len(indices)] == 0] = null_code
    return codes


def split_rows(table: pa.Table, keys: tuple, data_keys: tuple, base_key: tuple):
    """Split a chunk into ``(key, rows)`` by its data columns ``data_keys`` (a subset of ``keys``);
    ``base_key`` holds the values of the other keys (partition keys), ``None`` where not known.

    A dictionary column (read so from Parquet, or a pandas category) is split by its indices as
    they are; two entries of one value give one slice (their states merge by key).  Groups are
    found by counting when the code space is small (linear), by sorting otherwise.
    """
    codes, distinct, indices, dictionaries, _ = _slice_codes(table, data_keys)
    inverse, groups = _dense_codes(codes, distinct)
    if groups == 1:
        order, bounds, sorted_table = None, np.array([0, len(codes)]), table
    else:
        # numpy's stable sort is a radix sort for 8- and 16-bit integers: linear in the rows
        narrow = np.uint8 if groups <= 1 << 8 else np.uint16 if groups <= 1 << 16 else np.int64
        order = np.argsort(inverse.astype(narrow, copy=False), kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(groups + 1))
        # take() of a pyarrow array built from the buffer: of a numpy array, pyarrow would import pandas
        sorted_table = table.take(pa.Array.from_buffers(pa.int64(), len(order), [None, pa.py_buffer(
            np.ascontiguousarray(order, dtype=np.int64))]))
    positions = {k: i for i, k in enumerate(keys)}
    for g in range(groups):
        row = int(order[bounds[g]]) if order is not None else 0  # the group's first row
        key = list(base_key)
        for name, index, values in zip(data_keys, indices, dictionaries):
            key[positions[name]] = values[index[row]]
        yield tuple(key), sorted_table.slice(bounds[g], bounds[g + 1] - bounds[g])


def grouped_slices(table: pa.Table, spec, base_key: tuple) -> list | None:
    """``(key, state)`` of every slice of a chunk in one regrouping pass in C (no sort, no take), or
    None where that kernel does not apply (see :func:`~l1stream.exact.state.grouped_chunk_states`)."""
    codes, distinct, indices, dictionaries, renumbered = _slice_codes(table, spec.data_by)
    if renumbered:
        return None
    grouped = grouped_chunk_states(table[spec.actual], table[spec.prediction], codes, distinct, names=spec.names[:2])
    if grouped is None:
        return None
    present, states = grouped
    return list(zip(_decoded_keys(present, spec, dictionaries, base_key), states))


def dense_slice_codes(table: pa.Table, spec, base_key: tuple, limit: int) -> tuple[np.ndarray, list] | None:
    """Every row's slice as a code ``0..k-1`` (int64) and the ``k`` slice keys (in the order of the
    combined codes), for the report's C consumers; None with more than ``limit`` slices in the
    chunk, or codes that cannot be decoded digit by digit (see :func:`_slice_codes`).

    >>> from types import SimpleNamespace
    >>> spec = SimpleNamespace(by=("day", "m"), data_by=("m",))
    >>> codes, keys = dense_slice_codes(pa.table({"m": ["b", "a", "b"]}), spec, ("mon", None), 8)
    >>> codes.tolist(), keys
    ([0, 1, 0], [('mon', 'b'), ('mon', 'a')])
    """
    codes, distinct, _, dictionaries, renumbered = _slice_codes(table, spec.data_by)
    if renumbered or distinct > max(4 * len(codes), 1 << 16):
        return None
    counts = code_counts(codes, distinct)
    present = np.flatnonzero(counts)
    if len(present) > limit:
        return None
    keys = _decoded_keys(present.tolist(), spec, dictionaries, base_key)
    if len(present) and present[-1] == len(present) - 1:  # every code below the largest in use: dense already
        return codes, keys
    return (np.cumsum(counts > 0) - 1)[codes], keys


def _decoded_keys(present, spec, dictionaries: list, base_key: tuple) -> list:
    """The slice key of each combined code in ``present`` (mixed radix, the last key least significant)."""
    positions = {k: i for i, k in enumerate(spec.by)}
    sizes = [len(values) for values in dictionaries]  # each dictionary plus its null slot: the radix
    keys = []
    for code in present:
        key = list(base_key)
        for name, values, size in reversed(list(zip(spec.data_by, dictionaries, sizes))):  # least significant last
            code, index = divmod(code, size)
            key[positions[name]] = values[index]
        keys.append(tuple(key))
    return keys


def _slice_codes(table: pa.Table, data_keys: tuple):
    """One int64 code per row combining the rows' dictionary indices of ``data_keys`` (mixed radix:
    each key's dictionary size plus one, for null); with ``renumbered`` when the combined codes had
    to be numbered densely part-way (they would have overflowed), and cannot be decoded digit by digit."""
    codes = np.zeros(table.num_rows, dtype=np.int64)
    distinct, renumbered = 1, False  # distinct: an upper bound of the codes in use
    indices, dictionaries = [], []
    for name in data_keys:
        column = table[name].combine_chunks()  # dictionaries of several chunks are unified
        encoded = column if pa.types.is_dictionary(column.type) else column.dictionary_encode()
        size = len(encoded.dictionary)
        index = _codes_with_nulls_last(encoded.indices, size)
        if distinct * (size + 1) > _CODE_LIMIT:
            # the combined code would overflow int64: number the key combinations seen so far
            # densely (at most one per row), then go on
            _, codes = np.unique(codes, return_inverse=True)
            codes = codes.astype(np.int64).reshape(-1)
            distinct = int(codes.max()) + 1 if len(codes) else 1
            renumbered = True
        codes = index if distinct == 1 else codes * (size + 1) + index
        distinct *= size + 1
        indices.append(index)
        dictionaries.append(encoded.dictionary.to_pylist() + [None])
    return codes, distinct, indices, dictionaries, renumbered


def _dense_codes(codes: np.ndarray, distinct: int) -> tuple[np.ndarray, int]:
    """Codes renumbered 0..groups-1 in increasing order of the code, and the number of groups.

    Examples
    --------
    >>> inverse, groups = _dense_codes(np.array([7, 2, 7, 5]), 8)
    >>> inverse.tolist(), groups
    ([2, 0, 2, 1], 3)
    """
    if len(codes) == 0:
        return codes, 0
    if distinct <= max(4 * len(codes), 1 << 16):  # counting: linear
        present = code_counts(codes, distinct) > 0
        dense = np.cumsum(present) - 1
        return dense[codes], int(present.sum())
    unique, inverse = np.unique(codes, return_inverse=True)
    return inverse.reshape(-1), len(unique)
