"""Faults injected for real: mixed-up store entries, outputs aimed at their own input, relative
dates on non-date keys, full disks, directories in the way, SIGTERM and SIGINT mid-run, a kill
between the renames of a directory swap.

After each: the exit code, a one-line message naming the thing, previous outputs intact, no
temporary files left, the history consistent, and the next run exact (Fraction oracle).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import exact_mae, write_parquet
from services import need_module

import l1stream
from l1stream.cli import main
from l1stream.engine.store import FORMAT
from l1stream.storage import atomic_directory

IS_ROOT = os.geteuid() == 0
REQUIRE = os.environ.get("L1STREAM_REQUIRE_SERVICES") == "1"


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def make_logs(root, rng, days=(1, 2), rows=800):
    data = {}
    for day in days:
        a = np.round(rng.lognormal(10, 0.5, rows), 2)
        p = np.round(a * rng.lognormal(0, 0.1, rows), 2)
        write_parquet(root / f"date=2026-11-{day:02d}" / "part-0.parquet", 200, actual=a, prediction=p)
        data[day] = (a, p)
    return data


def truth(data) -> float:
    actual = np.concatenate([a for a, _ in data.values()])
    prediction = np.concatenate([p for _, p in data.values()])
    return exact_mae(actual, prediction)


def tree(path) -> dict:
    """Every file under path with its bytes (to show a directory unchanged)."""
    out = {}
    for name in sorted(glob.glob(os.path.join(str(path), "**"), recursive=True)):
        if os.path.isfile(name):
            with open(name, "rb") as handle:
                out[os.path.relpath(name, str(path))] = handle.read()
    return out


# -- the state store ----------------------------------------------------------------------------

def test_a_store_entry_copied_over_another_is_recomputed_not_used(tmp_path, rng, caplog):
    root, store = tmp_path / "logs", str(tmp_path / "store")
    data = make_logs(root, rng)
    first = l1stream.evaluate(str(root), store=store)
    entries = sorted(glob.glob(os.path.join(store, f"v{FORMAT}", "*", "*.json")))
    assert len(entries) == 2
    shutil.copyfile(entries[0], entries[1])  # day 1's state now sits under day 2's key
    with caplog.at_level("WARNING", logger="l1stream"):
        again = l1stream.evaluate(str(root), store=store)
    assert again.mae == first.mae == truth(data)
    assert again.fragments == {"read": 1, "reused": 1, "rejected": 1}
    assert "not used" in caplog.text and "not for this fragment" in caplog.text
    third = l1stream.evaluate(str(root), store=store)  # the recomputed entry is now right
    assert third.fragments == {"read": 0, "reused": 2, "rejected": 0} and third.mae == truth(data)


# -- outputs aimed at their own input -------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["losses", "{logs}", "--output", "{logs}/losses"],
    ["losses", "{logs}", "--output", "{logs}"],
    ["losses", "{logs}", "--output", "{tmp}"],                     # a parent: the swap would replace the input
    ["losses", "{logs}/date=2026-11-01", "--output", "{logs}"],
    ["mae", "{logs}", "--output", "{logs}/date=2026-11-01/mae.json"],
    ["mae", "{logs}", "--store", "{logs}/store"],
    ["mae", "{logs}", "--history", "{logs}/history"],
    ["report", "{logs}", "--html", "{logs}/report.html"],
])
def test_an_output_inside_its_input_is_refused_before_any_work(tmp_path, rng, capsys, args):
    logs = tmp_path / "logs"
    make_logs(logs, rng)
    before = tree(logs)
    argv = [a.format(logs=logs, tmp=tmp_path) for a in args]
    code, _, err = cli(capsys, *argv)
    assert code == 2, err
    flag = next(a for a in argv if a.startswith("--"))
    assert err.count("\n") == 1 and flag in err and ("inside the source" in err or "contains the source" in err)
    assert tree(logs) == before
    assert not glob.glob(str(tmp_path / ".*tmp-*")) and not glob.glob(str(logs / ".*tmp-*"))


def test_config_outputs_inside_a_source_are_refused(tmp_path, rng, capsys):
    logs = tmp_path / "logs"
    make_logs(logs, rng)
    config = tmp_path / "job.yaml"
    config.write_text(f"sources: [{{path: {logs}}}]\noutput: {{losses: {logs}/losses}}\n")
    code, _, err = cli(capsys, "run", config)
    assert code == 2 and "output.losses" in err and "inside the source" in err
    assert not (logs / "losses").exists()


def test_the_python_api_refuses_too(tmp_path, rng):
    from l1stream.errors import UsageError
    from l1stream.outputs.losses import write_losses

    logs = tmp_path / "logs"
    make_logs(logs, rng)
    with pytest.raises(UsageError, match="output .* inside the source"):
        write_losses(str(logs), str(logs / "l1"))
    with pytest.raises(UsageError, match="store .* inside the source"):
        l1stream.evaluate(str(logs), store=str(logs / "store"))


# -- relative dates -------------------------------------------------------------------------------

def test_a_relative_date_on_a_key_with_non_date_values_is_an_error_naming_them(tmp_path, capsys):
    for day in ("2026-11-01", "2099-01-01", "latest"):
        write_parquet(tmp_path / "logs" / f"date={day}" / "p.parquet", actual=[1.0], prediction=[2.0])
    code, _, err = cli(capsys, "mae", tmp_path / "logs", "--filter", "date<=today")
    assert code == 2
    assert "'latest'" in err and "not dates" in err and "2099" not in err


def test_a_relative_date_on_date_keys_still_prunes(tmp_path, capsys):
    for day in ("2026-11-01", "2099-01-01"):
        prediction = 4.0 if day < "2050" else 9.0
        write_parquet(tmp_path / "logs" / f"date={day}" / "p.parquet", actual=[1.0], prediction=[prediction])
    code, out, _ = cli(capsys, "mae", tmp_path / "logs", "--filter", "date<=today", "--json")
    assert code == 0 and json.loads(out)["mae"] == 3.0 and json.loads(out)["count"] == 1


# -- outputs that cannot be written ---------------------------------------------------------------

def test_a_failed_output_leaves_no_history_record(tmp_path, rng, capsys):
    logs, history = tmp_path / "logs", tmp_path / "history"
    data = make_logs(logs, rng)
    (tmp_path / "in-the-way").mkdir()  # a directory where the JSON file should go
    code, _, err = cli(capsys, "mae", logs, "--output", tmp_path / "in-the-way", "--history", history,
                       "--max-increase", "1")
    assert code == 7 and "could not write" in err and "in-the-way" in err and "internal error" not in err
    assert not history.exists() or not glob.glob(str(history / "**" / "*.parquet"), recursive=True)
    code, out, _ = cli(capsys, "mae", logs, "--output", tmp_path / "mae.json", "--history", history, "--json")
    assert code == 0 and json.loads(out)["mae"] == truth(data)
    from l1stream.outputs.history import read
    assert len([r for r in read(str(history)) if r["slice"] == ""]) == 1


@contextlib.contextmanager
def full_disk(path):
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.skipif(not IS_ROOT and not REQUIRE, reason="mounting a tmpfs needs root")
def test_a_full_disk_is_a_located_error_and_the_previous_output_survives(tmp_path, rng, capsys):
    logs = tmp_path / "logs"
    data = make_logs(logs, rng)
    with full_disk(tmp_path / "small") as small:
        assert cli(capsys, "mae", logs, "--output", small / "mae.json")[0] == 0
        previous = (small / "mae.json").read_bytes()
        assert cli(capsys, "losses", logs, "--output", small / "losses")[0] == 0
        previous_losses = tree(small / "losses")
        with open(small / "filler", "wb") as handle:  # fill the disk
            with contextlib.suppress(OSError):
                handle.write(b"x" * (1 << 20))
        code, _, err = cli(capsys, "mae", logs, "--output", small / "mae.json", "--per-file")
        assert code == 7 and "No space left on device" in err and "mae.json" in err
        assert (small / "mae.json").read_bytes() == previous
        code, _, err = cli(capsys, "losses", logs, "--output", small / "losses")
        assert code == 7 and "No space left" in err and "internal error" not in err
        assert tree(small / "losses") == previous_losses
        assert not [n for n in os.listdir(small) if ".tmp-" in n or ".old-" in n]
    assert json.loads(previous)["mae"] == truth(data)


# -- signals --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_logs(tmp_path_factory):
    rng = np.random.default_rng(5)
    root = tmp_path_factory.mktemp("big")
    for i in range(120):
        a = rng.lognormal(10, 0.5, 40_000)
        write_parquet(root / f"date=2026-10-{i % 28 + 1:02d}" / f"part-{i}.parquet", 10_000, actual=a,
                      prediction=a * 1.01)
    return root


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_losses_leaves_the_previous_output_and_no_staging(big_logs, tmp_path, sig, code):
    output = tmp_path / "losses"
    output.mkdir()
    (output / "previous.txt").write_text("the previous output")
    proc = subprocess.Popen([sys.executable, "-m", "l1stream", "losses", str(big_logs), "--output", str(output),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    written = []
    while time.monotonic() < deadline and proc.poll() is None:
        staging = glob.glob(str(tmp_path / ".losses.tmp-*"))
        written = glob.glob(str(tmp_path / ".losses.tmp-*" / "**" / "*.parquet"), recursive=True)
        if staging and written:
            break
        time.sleep(0.01)
    assert written, "the run finished before any loss file was staged: make the dataset larger"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "outputs left as they were" in err and "Traceback" not in err
    assert tree(output) == {"previous.txt": b"the previous output"}
    assert not glob.glob(str(tmp_path / ".losses.*")), os.listdir(tmp_path)


# -- the directory swap ---------------------------------------------------------------------------

def test_a_directory_output_is_swapped_atomically(tmp_path):
    target = tmp_path / "out"
    for generation in ("old", "new"):
        with atomic_directory(str(target)) as staging:
            with open(os.path.join(staging, "content.txt"), "w") as handle:
                handle.write(generation)
    assert tree(target) == {"content.txt": b"new"}
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_kill_between_the_two_renames_loses_nothing(tmp_path, monkeypatch):
    """Without an atomic exchange, a kill after the old directory was set aside: the next write
    puts it back before it starts, so the old content was never lost."""
    from l1stream import storage

    target = tmp_path / "out"
    with atomic_directory(str(target)) as staging:
        (tmp_path / staging / "content.txt").write_text("old")
    monkeypatch.setattr(storage, "_exchange", lambda a, b: False)
    real_replace = os.replace
    calls = []

    def killed_after_first(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the kill lands between the two renames
        return real_replace(src, dst)

    monkeypatch.setattr(storage.os, "replace", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(str(target)) as staging:
            (tmp_path / staging / "content.txt").write_text("new")
    monkeypatch.setattr(storage.os, "replace", real_replace)
    assert not target.exists()  # the window the exchange closes
    with pytest.raises(RuntimeError):
        with atomic_directory(str(target)):
            raise RuntimeError("the next run fails too")
    assert tree(target) == {"content.txt": b"old"}


# -- environment faults outside l1stream: located errors, never "internal error" -------------------

def test_a_dangling_symlink_is_a_located_error_or_skipped(tmp_path, rng, capsys):
    logs = tmp_path / "logs"
    data = make_logs(logs, rng, days=(1,))
    os.symlink(tmp_path / "gone.parquet", logs / "date=2026-11-01" / "part-1.parquet")
    code, _, err = cli(capsys, "mae", logs)
    assert code == 3 and "part-1.parquet" in err and "a symbolic link to " in err and ", which does not exist" in err
    code, out, _ = cli(capsys, "mae", logs, "--on-bad-file", "skip", "--allow-skipped", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["mae"] == truth(data)
    assert [s["path"] for s in doc["files"]["skipped"]] == [str(logs / "date=2026-11-01" / "part-1.parquet")]


@pytest.mark.parametrize("address, words", [("tcp://", "no host"), ("tcp://host:notaport", "port must be a number"),
                                             ("tcp://host:0", "port must be a number")])
def test_a_malformed_scheduler_address_is_a_usage_error(tmp_path, capsys, address, words):
    path = write_parquet(tmp_path / "x.parquet", actual=[1.0], prediction=[2.0])
    code, _, err = cli(capsys, "mae", path, "--scheduler", address)
    assert code == 2 and words in err and "internal error" not in err


def test_an_unreachable_object_store_says_where_and_how_long(tmp_path, capsys):
    need_module("s3fs")
    started = time.monotonic()
    code, _, err = cli(capsys, "mae", "s3://bucket/logs/", "--storage-option", "endpoint_url=http://127.0.0.1:1",
                       "--storage-option", "key=a", "--storage-option", "secret=b")
    assert code == 3 and "http://127.0.0.1:1" in err and "failed after" in err and "endpoint_url" in err
    assert err.count("\n") == 1 and time.monotonic() - started < 60


def test_history_on_a_directory_that_is_not_one_says_so(tmp_path, rng, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    code, out, err = cli(capsys, "history", tmp_path / "notes")
    assert code == 3 and "is not a metrics history" in err and out == ""
    code, _, err = cli(capsys, "history", tmp_path / "missing")
    assert code == 3 and "does not exist" in err


def test_a_damaged_history_record_is_named(tmp_path, rng, capsys):
    logs, history = tmp_path / "logs", tmp_path / "history"
    make_logs(logs, rng)
    assert cli(capsys, "mae", logs, "--history", history)[0] == 0
    record = glob.glob(str(history / "run-*.parquet"))[0]
    with open(record, "r+b") as handle:
        handle.truncate(30)
    code, _, err = cli(capsys, "history", history)
    assert code == 3 and os.path.basename(record) in err and "damaged" in err
    code, _, err = cli(capsys, "mae", logs, "--history", history, "--max-increase", "1")
    assert code == 3 and "damaged" in err


# -- hostile configs ------------------------------------------------------------------------------

BOMB = "\n".join([
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    *(f"{x}: &{x} [{','.join([f'*{p}'] * 9)}]" for p, x in zip("abcdefgh", "bcdefghi")),
])


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path, capsys):
    config = tmp_path / "bomb.yaml"
    config.write_text("report:\n  bins: [1]\nanchors:\n" + "\n".join("  " + line for line in BOMB.splitlines())
                      + "\nsources: [x.parquet]\n")
    started = time.monotonic()
    code, _, err = cli(capsys, "run", config)
    assert code == 2 and "alias bomb" in err and time.monotonic() - started < 5
    many = tmp_path / "many.yaml"
    many.write_text("a: &a 1\nb: [" + ", ".join(["*a"] * 500) + "]\nsources: [x.parquet]\n")
    code, _, err = cli(capsys, "run", many)
    assert code == 2 and "aliases" in err


@pytest.mark.parametrize("line, key", [("num_workers: 1000000000000000000000000000000", "num_workers"),
                                       ("chunk_rows: 0", "chunk_rows"), ("task_bytes: -5", "task_bytes")])
def test_integers_out_of_range_name_their_key(tmp_path, capsys, line, key):
    config = tmp_path / "job.yaml"
    config.write_text(f"sources: [x.parquet]\n{line}\n")
    code, _, err = cli(capsys, "run", config)
    assert code == 2 and err.startswith(f"l1stream: error: {key}: expected an integer from")


@pytest.mark.parametrize("override", ["..=1", ".a=1", "a..b=1", "sources[x].path=1", "=1"])
def test_odd_set_paths_are_usage_errors(tmp_path, capsys, override):
    config = tmp_path / "job.yaml"
    config.write_text("sources: [x.parquet]\n")
    code, _, err = cli(capsys, "run", config, "--set", override)
    assert code == 2 and "--set" in err


SLOW_TASKS = """
import time
from distributed.diagnostics.plugin import WorkerPlugin


class SlowTasks(WorkerPlugin):
    def transition(self, key, start, finish, **kwargs):
        if finish == "executing":  # every task starts late: the run is still going when the scheduler dies
            time.sleep(0.5)


async def dask_setup(worker):
    await worker.plugin_add(SlowTasks(), name="slow-tasks")
"""


def test_a_scheduler_that_dies_mid_run_is_exit_6_in_one_line(big_logs, tmp_path):
    from services import start, stop, wait_for

    slow = tmp_path / "slow_tasks.py"  # a worker preload: the job cannot finish before the scheduler is stopped
    slow.write_text(SLOW_TASKS)
    scheduler_file = tmp_path / "scheduler.json"
    log = tmp_path / "scheduler.log"
    scheduler = start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                       "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)], log_path=log)
    worker = None
    try:
        wait_for(lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0, 60, "the scheduler", log)
        address = json.loads(scheduler_file.read_text())["address"]
        worker = start([sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1",
                        "--nthreads", "1", "--dashboard-address", "127.0.0.1:0", "--local-directory",
                        str(tmp_path / "w"), "--death-timeout", "10", "--preload", str(slow)],
                       log_path=tmp_path / "worker.log")
        wait_for(lambda: "Register worker" in log.read_text(errors="replace"), 60, "a worker", log)
        job = subprocess.Popen([sys.executable, "-m", "l1stream", "mae", str(big_logs), "--scheduler", address,
                                "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: "Receive client connection" in log.read_text(errors="replace"), 60, "the client", log)
        stop(scheduler, timeout=0.1)
        _, err = job.communicate(timeout=120)
        assert job.returncode == 6, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "went away" in lines[0] and address in lines[0], err
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                stop(proc)


@pytest.mark.skipif(not IS_ROOT and not REQUIRE, reason="mounting a tmpfs needs root")
def test_a_read_only_output_location_is_refused_before_the_scan(tmp_path, rng, capsys):
    logs = tmp_path / "logs"
    make_logs(logs, rng)
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(frozen)], check=True)
    try:
        code, _, err = cli(capsys, "mae", logs, "--output", frozen / "results" / "mae.json")
        assert code == 7 and "read-only file system" in err and str(frozen) in err
        code, _, err = cli(capsys, "losses", logs, "--output", frozen / "losses")
        assert code == 7 and "read-only" in err
    finally:
        subprocess.run(["umount", "-l", str(frozen)], check=False)


@pytest.mark.skipif(not IS_ROOT and not REQUIRE, reason="dropping root's file capabilities needs setpriv as root")
def test_a_directory_without_write_permission_is_refused_before_the_scan(tmp_path, rng):
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is missing") if REQUIRE else pytest.skip("setpriv is missing")
    logs = tmp_path / "logs"
    make_logs(logs, rng)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    proc = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps",
                           "-dac_override,-dac_read_search", sys.executable, "-m", "l1stream", "mae", str(logs),
                           "--output", str(locked / "mae.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 7, proc.stderr
    assert "permissions" in proc.stderr and str(locked) in proc.stderr


def test_an_unreachable_scheduler_says_how_long_it_waited_and_how_to_change_it(tmp_path):
    path = write_parquet(tmp_path / "x.parquet", actual=[1.0], prediction=[2.0])
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    proc = subprocess.run([sys.executable, "-m", "l1stream", "mae", path, "--scheduler", "tcp://127.0.0.1:1"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 6, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "waited" in lines[0] and "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT" in lines[0]
