"""A realistic synthetic prediction log: house prices, hive-partitioned by date and model.

Deterministic (one seed per file), so the demo's MAE is the same on every
machine.  Columns: ``listing_id`` (int64), ``region`` (string), ``sqft``
(int32), ``actual`` and ``prediction`` (float64 prices in dollars).  Model
``v1`` errs by ~9% with a few gross misses; ``v2`` by ~6%.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from l1stream.storage import atomic_directory

DEFAULT_ROWS = 4_000_000
REGIONS = np.array(["north", "south", "east", "west", "central"])
_MARKER = "_l1stream_demo.json"


def write_demo_dataset(path: str, *, rows: int = DEFAULT_ROWS, days: int = 14, models=("v1", "v2"),
                       files_per_partition: int = 1, row_group_rows: int = 131072, seed: int = 20261128,
                       start: dt.date = dt.date(2026, 11, 1)) -> str:
    """Write the demo dataset to ``path`` (replacing it atomically) unless an identical one is there.

    Returns ``path``.  ``rows`` is split evenly over ``days x len(models) x files_per_partition`` files.
    """
    params = {"rows": rows, "days": days, "models": list(models), "files_per_partition": files_per_partition,
              "row_group_rows": row_group_rows, "seed": seed, "start": start.isoformat(), "version": 1}
    marker = os.path.join(path, _MARKER)
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as handle:
            if json.load(handle) == params:
                return path
    files = days * len(models) * files_per_partition
    per_file = [rows // files + (1 if i < rows % files else 0) for i in range(files)]
    with atomic_directory(path) as staging:
        number = 0
        for day in range(days):
            date = (start + dt.timedelta(days=day)).isoformat()
            for m, model in enumerate(models):
                directory = os.path.join(staging, f"date={date}", f"model={model}")
                os.makedirs(directory)
                for part in range(files_per_partition):
                    table = _table(per_file[number], seed + number, m, number)
                    pq.write_table(table, os.path.join(directory, f"part-{part:05d}.parquet"),
                                   row_group_size=row_group_rows, write_page_checksum=True)
                    number += 1
        with open(os.path.join(staging, _MARKER), "w", encoding="utf-8") as handle:
            json.dump(params, handle)
    return path


def _table(n: int, seed: int, model_index: int, file_number: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    sqft = rng.integers(450, 4500, n).astype(np.int32)
    region = rng.integers(0, len(REGIONS), n)
    price_per_sqft = np.array([310.0, 240.0, 275.0, 420.0, 515.0])[region]
    actual = np.round(sqft * price_per_sqft * rng.lognormal(0.0, 0.25, n), 2)
    spread = 0.09 if model_index == 0 else 0.06
    prediction = actual * rng.lognormal(0.0, spread, n)
    if model_index == 0:
        misses = rng.random(n) < 0.002
        prediction[misses] *= rng.uniform(1.5, 3.0, int(misses.sum()))
    ids = np.arange(n, dtype=np.int64) + (file_number << 32)
    return pa.table({"listing_id": ids, "region": pa.array(REGIONS[region]).dictionary_encode(),
                     "sqft": sqft, "actual": actual, "prediction": np.round(prediction, 2)})
