"""Object storage with real latency: l1stream and a Polars script against the same moto S3 server.

    python benchmarks/object_storage.py                       # 0, 5 and 20 ms one way
    python benchmarks/object_storage.py --delays 0,10 --small-files 500

Three datasets in one bucket: many small files (1,000 x 1,000 rows in date= partitions), a few large
files (4 x 4M rows), and a Delta table (20 files, written by deltalake).  Latency comes from a TCP
proxy in front of moto that holds every byte for ``delay`` milliseconds in each direction (pipelined:
it adds latency, not a bandwidth limit), so a round trip costs ``2 x delay``.  This machine's kernel
has no netem qdisc (``tc qdisc add ... netem`` fails with "unknown qdisc"), which the issue's
network-namespace setup needs; the proxy gives the same per-request cost from user space.

Each engine runs as a whole process, ``--repeats`` times per dataset and delay (the median is shown;
moto serves every request in Python on the same two cores, so single runs vary by 20-30%); requests
are counted from moto's own request log.  For the large files, the ``read`` rows give each engine's
throughput once running: in one process, the median of three reads after an untimed first one (the
first pays the imports, the S3 client and the connections: that is what the whole-process rows add).
Every answer is checked against the exact MAE of the data written.  Asserts
nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from services import start_moto, stop  # noqa: E402  (the tests' own service helpers)

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
LARGE_BYTES = 4 * 4_000_000 * 2 * 8  # the large files' two float64 columns, decoded
ENV.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"})


class DelayProxy:
    """127.0.0.1:<port> -> upstream, every chunk held ``delay`` seconds in each direction."""

    def __init__(self, upstream_port: int, delay: float):
        self.upstream_port, self.delay = upstream_port, delay
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._run, args=(started,), daemon=True).start()
        started.wait()

    def _run(self, started):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _client(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    async def _pipe(self, reader, writer):
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver():
            while True:
                due, data = await queue.get()
                if data is None:
                    writer.close()
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(1 << 16):
                queue.put_nowait((time.monotonic() + self.delay, data))
        finally:
            queue.put_nowait((time.monotonic() + self.delay, None))
            await sender

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)


def exact(values) -> float:
    total = Fraction(0)
    count = 0
    for a, p in values:
        total += sum(abs(Fraction(x) - Fraction(y)) for x, y in zip(a.tolist(), p.tolist()))
        count += len(a)
    return float(total / count)


def write_datasets(fs, root: str, small_files: int) -> dict:
    rng = np.random.default_rng(0)
    truths = {}
    small = []
    for i in range(small_files):
        a = rng.lognormal(10, 1, 1000)
        p = a * rng.lognormal(0, 0.1, 1000)
        small.append((a, p))
        buf = pa.BufferOutputStream()
        pq.write_table(pa.table({"actual": a, "prediction": p}), buf)
        fs.pipe(f"logs/small/date=2026-11-{i % 28 + 1:02d}/part-{i:05d}.parquet", buf.getvalue().to_pybytes())
    truths["small"] = exact(small)
    large = []
    for i in range(4):
        a = rng.lognormal(10, 1, 4_000_000)
        p = a * rng.lognormal(0, 0.1, 4_000_000)
        large.append((a, p))
        path = os.path.join(root, f"large-{i}.parquet")
        pq.write_table(pa.table({"actual": a, "prediction": p}), path)
        fs.put_file(path, f"logs/large/part-{i}.parquet")
    truths["large"] = exact(large)
    import deltalake

    delta_rows = []
    table_dir = os.path.join(root, "delta")
    for _ in range(20):
        a = rng.lognormal(10, 1, 20_000)
        p = a * rng.lognormal(0, 0.1, 20_000)
        delta_rows.append((a, p))
        deltalake.write_deltalake(table_dir, pa.table({"actual": a, "prediction": p}), mode="append")
    for base, _, names in os.walk(table_dir):
        for name in names:
            local = os.path.join(base, name)
            fs.put_file(local, "logs/delta/" + os.path.relpath(local, table_dir))
    truths["delta"] = exact(delta_rows)
    return truths


def count_requests(log: str, since: int) -> int:
    lines = open(log).read().splitlines()[since:]
    return sum(1 for line in lines if re.search(r'"(GET|HEAD|PUT|POST) ', line))


def run(argv, log) -> tuple:
    """(wall seconds, the MAE printed, requests the server saw) of one whole-process run."""
    since = len(open(log).read().splitlines())
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed: {done.stderr[-2000:]}")
    last = done.stdout.strip().splitlines()[-1]
    mae = json.loads(last)["mae"] if last.startswith("{") else float(last)
    return wall, mae, count_requests(log, since)


def median_run(argv, log, repeats: int) -> tuple:
    """:func:`run` ``repeats`` times: the median wall time, the answer, the requests of one run."""
    runs = sorted((run(argv, log) for _ in range(repeats)), key=lambda r: r[0])
    return runs[len(runs) // 2]


THROUGHPUT = """
import json, statistics, sys, time
source, url, engine = sys.argv[1:4]
if engine == "l1stream":
    import l1stream
    read = lambda: l1stream.evaluate(source, storage_options={"endpoint_url": url}).mae
else:
    import polars as pl
    opts = {"aws_endpoint_url": url, "aws_allow_http": "true", "aws_region": "us-east-1"}
    read = lambda: pl.scan_parquet(source + "**/*.parquet", storage_options=opts).select(
        (pl.col("actual") - pl.col("prediction")).abs().mean()).collect().item()
read()  # imports, clients, connections: what a whole process pays once
times = []
for _ in range(3):
    started = time.perf_counter()
    mae = read()
    times.append(time.perf_counter() - started)
print(json.dumps({"seconds": statistics.median(times), "mae": mae}))
"""


def throughput(source: str, url: str, engine: str) -> tuple:
    """``(seconds, MAE)``: the median of three reads in one process after an untimed one."""
    done = subprocess.run([sys.executable, "-c", THROUGHPUT, source, url, engine], capture_output=True, text=True,
                          env=ENV)
    if done.returncode != 0:
        raise SystemExit(f"{engine} throughput run failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["seconds"], out["mae"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", default="0,5,20", help="one-way delays in ms (comma-separated)")
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="runs per engine, dataset and delay (the median)")
    parser.add_argument("--datasets", default="small,large,delta", help="which of small, large, delta to run")
    args = parser.parse_args()

    import s3fs

    with tempfile.TemporaryDirectory() as root:
        log = os.path.join(root, "moto.log")
        proc, endpoint = start_moto(log)
        try:
            fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing")
            fs.mkdir("logs")
            print(f"writing {args.small_files:,} small files, 4 x 4M rows, a 20-file Delta table ...")
            truths = write_datasets(fs, root, args.small_files)
            port = int(endpoint.rsplit(":", 1)[1])
            print(f"\n{'dataset':<7}{'delay':>7}{'engine':>10}{'seconds':>9}{'requests':>10}{'per file':>10}"
                  f"{'x Polars':>10}{'exact':>7}")
            files = {"small": args.small_files, "large": 4, "delta": 20}
            for delay in [float(d) for d in args.delays.split(",")]:
                proxy = DelayProxy(port, delay / 1000)
                url = f"http://127.0.0.1:{proxy.port}"
                try:
                    for name in args.datasets.split(","):
                        source = f"s3://logs/{name}/"
                        ours = median_run([sys.executable, "-m", "l1stream", "mae", source, "--storage-option",
                                           f"endpoint_url={url}", "--json", "--quiet"], log, args.repeats)
                        scan = ("pl.scan_delta(src, storage_options=opts)" if name == "delta" else
                                "pl.scan_parquet(src + '**/*.parquet', storage_options=opts)")
                        script = (f"import polars as pl\nsrc = {source!r}\nopts = {{'aws_endpoint_url': {url!r}, "
                                  f"'aws_allow_http': 'true', 'aws_region': 'us-east-1'}}\n"
                                  f"print({scan}.select((pl.col('actual') - pl.col('prediction')).abs().mean())"
                                  f".collect().item())")
                        polars = median_run([sys.executable, "-c", script], log, args.repeats)
                        for engine, (wall, mae, requests) in (("l1stream", ours), ("Polars", polars)):
                            ulps = round(abs(mae - truths[name]) / np.spacing(truths[name]))
                            print(f"{name:<7}{delay:>5.0f}ms{engine:>10}{wall:>9.2f}{requests:>10}"
                                  f"{requests / files[name]:>10.2f}{wall / polars[0]:>10.2f}"
                                  f"{'yes' if ulps == 0 else f'{ulps} ulp':>7}")
                        if name == "large":  # the rate once running: in process, after a first read
                            rates = {engine: throughput(source, url, engine) for engine in ("l1stream", "Polars")}
                            for engine, (seconds, mae) in rates.items():
                                ulps = round(abs(mae - truths[name]) / np.spacing(truths[name]))
                                print(f"{'  read':<7}{delay:>5.0f}ms{engine:>10}{seconds:>9.2f}"
                                      f"{LARGE_BYTES / seconds / 1e6:>9.0f} MB/s"
                                      f"{seconds / rates['Polars'][0]:>11.2f}"
                                      f"{'yes' if ulps == 0 else f'{ulps} ulp':>7}")
                finally:
                    proxy.close()
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
