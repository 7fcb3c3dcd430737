"""Planning cost versus the number of files (synthetic metadata: no data is read).

    python benchmarks/planning.py                  # 1k, 10k, 100k files
    python benchmarks/planning.py --files 1000,1000000

For each size: partition-typed listing -> partition pruning -> task grouping (plan_tasks), then the
Dask graph of scan tasks plus the tree reduction (split_every=16), its task count and pickled size.
Files are 32 MiB each (so 100k files ~ 3 TB), in date=/model= partitions.
"""

from __future__ import annotations

import argparse
import pickle
import time

from l1stream.engine.job import SPLIT_EVERY
from l1stream.engine.planning import DEFAULT_TASK_BYTES, plan_tasks
from l1stream.engine.scan import ScanSpec
from l1stream.sources.discovery import Discovery, SourceFile
from l1stream.sources.filters import bind_filters, parse_filters
from l1stream.sources.hive import infer_partition_types as _infer_partition_types


def synthetic(files: int, size: int) -> Discovery:
    listing = [SourceFile(f"bucket/logs/date=2026-{1 + (i // 1000) % 12:02d}-{1 + i % 28:02d}/model=v{i % 4}/"
                          f"part-{i:07d}.parquet", size,
                          (("date", f"2026-{1 + (i // 1000) % 12:02d}-{1 + i % 28:02d}"), ("model", f"v{i % 4}")))
               for i in range(files)]
    return Discovery(None, listing, _infer_partition_types(listing))


def measure(files: int, size: int) -> dict:
    from l1stream.engine.scan_state import merge_all
    from l1stream.engine.schedulers import tree_graph
    from l1stream.engine.tasks import scan_pieces

    t0 = time.perf_counter()
    found = synthetic(files, size)
    t1 = time.perf_counter()
    bound = bind_filters(parse_filters(["model in v1,v2,v3,v0"]), found.partition_types, None)
    plan = plan_tasks(found, bound, target_bytes=DEFAULT_TASK_BYTES)
    t2 = time.perf_counter()
    graph, root = tree_graph("l1stream-scan", scan_pieces, plan.tasks, (ScanSpec("actual", "prediction"), None),
                             merge_all, SPLIT_EVERY)
    depth = int(root[0].split("merge")[1].split("-")[0]) if "merge" in root[0] else 0
    t3 = time.perf_counter()
    size_bytes = len(pickle.dumps(graph))
    return {"files": files, "typed listing s": t1 - t0, "plan s": t2 - t1, "graph s": t3 - t2,
            "scan tasks": len(plan.tasks), "graph tasks": len(graph), "tree depth": depth,
            "graph MiB": size_bytes / 2**20, "per file ms": (t3 - t1) / files * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", default="1000,10000,100000")
    parser.add_argument("--file-mib", type=int, default=32)
    args = parser.parse_args()
    header = ["files", "typed listing s", "plan s", "graph s", "per file ms", "scan tasks", "graph tasks",
              "tree depth", "graph MiB"]
    print(" | ".join(header))
    for n in (int(float(x)) for x in args.files.split(",")):
        row = measure(n, args.file_mib << 20)
        print(" | ".join(f"{row[h]:.3f}" if isinstance(row[h], float) else str(row[h]) for h in header))


if __name__ == "__main__":
    main()
