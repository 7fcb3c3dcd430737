"""Scheduled runs: the incremental state store, crash and concurrency safety, gates, history."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import exact_mae, write_parquet

import l1stream
from l1stream.cli.commands import main
from l1stream.engine.store import FORMAT


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def make_day(root, day, rng, rows=2000, models=("v1", "v2")):
    data = {}
    for m in models:
        a = np.round(rng.lognormal(12, 0.5, rows), 2)
        p = np.round(a * rng.lognormal(0, 0.1, rows), 2)
        write_parquet(root / f"date=2026-11-{day:02d}" / f"model={m}" / "part-0.parquet", 500, actual=a, prediction=p)
        data[m] = (a, p)
    return data


def truth(days: dict):
    a = np.concatenate([v[0] for d in days.values() for v in d.values()])
    p = np.concatenate([v[1] for d in days.values() for v in d.values()])
    return exact_mae(a, p), len(a)


def test_incremental_sequence_matches_full_recompute(tmp_path, rng):
    root, store = tmp_path / "logs", str(tmp_path / "store")
    days = {d: make_day(root, d, rng) for d in (1, 2, 3)}

    def run_and_check(read, reused):
        incremental = l1stream.evaluate(str(root), by="model", store=store)
        full = l1stream.evaluate(str(root), by="model")
        assert incremental.mae == full.mae == truth(days)[0]
        assert incremental.group_states == full.group_states
        assert incremental.fragments == {"read": read, "reused": reused, "rejected": 0}
        assert incremental.count == truth(days)[1]

    run_and_check(6, 0)                       # first run: everything read
    run_and_check(0, 6)                       # nothing changed: nothing read
    days[4] = make_day(root, 4, rng)          # a new day lands
    run_and_check(2, 6)
    time.sleep(0.01)
    days[2] = make_day(root, 2, rng, rows=1500)  # a day is rewritten in place
    run_and_check(2, 6)
    import shutil

    shutil.rmtree(root / "date=2026-11-01")   # a day is deleted
    del days[1]
    run_and_check(0, 6)
    entries = glob.glob(os.path.join(store, f"v{FORMAT}", "*", "*.json"))
    assert len(entries) == 6                  # stale entries of rewritten/deleted files are gone
    forced = l1stream.evaluate(str(root), by="model", store=store, full=True)
    assert forced.fragments == {"read": 6, "reused": 0, "rejected": 0} and forced.mae == truth(days)[0]


def test_store_separates_evaluation_definitions(tmp_path, rng):
    root, store = tmp_path / "logs", str(tmp_path / "store")
    make_day(root, 1, rng)
    l1stream.evaluate(str(root), store=store)
    other = l1stream.evaluate(str(root), store=store, by="model")      # different slices: not reused
    assert other.fragments["reused"] == 0
    filtered = l1stream.evaluate(str(root), store=store, filters="actual>100000")  # row filter changes states
    assert filtered.fragments["reused"] == 0
    pruned = l1stream.evaluate(str(root), store=store, filters="model==v1")  # partition filter: reused
    assert pruned.fragments == {"read": 0, "reused": 1, "rejected": 0}


def test_corrupted_entry_is_detected_and_recomputed(tmp_path, rng, caplog):
    root, store = tmp_path / "logs", str(tmp_path / "store")
    days = {1: make_day(root, 1, rng)}
    first = l1stream.evaluate(str(root), store=store)
    entry = sorted(glob.glob(os.path.join(store, f"v{FORMAT}", "*", "*.json")))[0]
    doc = json.loads(open(entry).read())
    doc["state"]["groups"][0][1]["count"] += 1          # a silent bit flip in the count
    open(entry, "w").write(json.dumps(doc))
    with caplog.at_level("WARNING", logger="l1stream"):
        again = l1stream.evaluate(str(root), store=store)
    assert "checksum mismatch" in caplog.text and again.fragments == {"read": 1, "reused": 1, "rejected": 1}
    assert again.mae == first.mae == truth(days)[0] and again.count == first.count
    open(entry, "w").write("{not json")
    assert l1stream.evaluate(str(root), store=store).mae == first.mae


# A CLI process whose state store pauses at its Nth write until the test says go: the test then acts
# while the run is provably mid-way (entries written, more to come), whatever the machine's speed.
PAUSING_CLI = """
import os, sys, time
from l1stream.engine import store
pause_at, arrived, release = int(sys.argv[1]), sys.argv[2], sys.argv[3]
original, saved = store.StateStore.save, []

def save(self, key, identity, state):
    original(self, key, identity, state)
    saved.append(key)
    if len(saved) == pause_at:
        open(arrived + "." + str(os.getpid()), "w").close()
        deadline = time.monotonic() + 120
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.005)

store.StateStore.save = save
from l1stream.cli.commands import main
sys.exit(main(["mae", *sys.argv[4:], "--json", "--quiet"]))
"""


def _pausing_cli(tmp_path, pause_at: int, *args):
    arrived, release = str(tmp_path / "arrived"), str(tmp_path / "release")
    proc = subprocess.Popen([sys.executable, "-c", PAUSING_CLI, str(pause_at), arrived, release, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, arrived, release


def _wait_for_arrivals(arrived: str, count: int, procs) -> None:
    deadline = time.monotonic() + 120
    while len(glob.glob(arrived + ".*")) < count:
        assert time.monotonic() < deadline, [p.communicate() for p in procs]
        assert all(p.poll() is None for p in procs), "a run ended before reaching its pause"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def many_files(tmp_path_factory):
    rng = np.random.default_rng(2026)
    root = tmp_path_factory.mktemp("many")
    days = {d: make_day(root, d, rng, rows=20_000) for d in range(1, 29)}
    expected = truth(days)
    return root, days, expected


@pytest.mark.parametrize("how, exit_code", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, 143),
                                            (signal.SIGINT, 130)])
def test_a_run_stopped_mid_way_leaves_a_valid_store(many_files, tmp_path, how, exit_code):
    """Stopped after its 3rd of 56 store entries (paused there, so provably mid-way): the store keeps
    exactly what was written whole, and the next run reuses it and gives the exact answer."""
    root, days, expected = many_files
    store = tmp_path / "store"
    proc, arrived, _ = _pausing_cli(tmp_path, 3, root, "--store", store, "--scheduler", "synchronous")
    _wait_for_arrivals(arrived, 1, [proc])
    proc.send_signal(how)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == exit_code, err
    entries = glob.glob(str(store / f"v{FORMAT}" / "*" / "*.json"))
    assert len(entries) == 3
    for entry in entries:
        json.loads(open(entry).read())  # whole entries only: no torn write
    assert not [p for p in glob.glob(str(store / "**" / "*"), recursive=True)
                if os.path.isfile(p) and not p.endswith(".json")], "staging files left behind"
    result = l1stream.evaluate(str(root), store=str(store))
    assert result.fragments == {"read": 53, "reused": 3, "rejected": 0}
    assert (result.mae, result.count) == expected


def test_two_runs_at_once(many_files, tmp_path):
    """Two runs on one store, both paused at their 5th entry until both are there (a barrier): they
    overlap for certain, then both finish with the exact answer and the store is whole."""
    root, days, expected = many_files
    store = tmp_path / "store"
    procs, arrived, release = [], None, None
    for _ in range(2):
        proc, arrived, release = _pausing_cli(tmp_path, 5, root, "--store", store)
        procs.append(proc)
    _wait_for_arrivals(arrived, 2, procs)
    assert all(p.poll() is None for p in procs)  # both mid-run at once
    open(release, "w").close()
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outputs]
    maes = {json.loads(out)["mae"] for out, _ in outputs}
    assert maes == {expected[0]}
    third = l1stream.evaluate(str(root), store=str(store))
    assert third.fragments == {"read": 0, "reused": 56, "rejected": 0} and third.mae == expected[0]


# --- gates, paired comparison, history -----------------------------------------------------

@pytest.fixture
def two_models(tmp_path, rng):
    n = 4000
    a = np.round(rng.lognormal(12, 0.5, n), 2)
    new = np.round(a * rng.lognormal(0, 0.05, n), 2)
    old = np.round(a * rng.lognormal(0, 0.1, n), 2)
    seg = np.where(np.arange(n) % 10 == 0, "rare", "common")
    path = write_parquet(tmp_path / "d" / "p.parquet", actual=a, prediction=new, old=old, seg=seg)
    return path, a, new, old, seg


def test_paired_comparison_is_exact(two_models):
    path, a, new, old, seg = two_models
    result = l1stream.evaluate(path, baseline_prediction="old", by="seg")
    assert result.mae == exact_mae(a, new) and result.baseline_mae == exact_mae(a, old)
    from fractions import Fraction

    diff = (sum(abs(Fraction(x) - Fraction(y)) for x, y in zip(a, new))
            - sum(abs(Fraction(x) - Fraction(y)) for x, y in zip(a, old))) / len(a)
    assert result.difference == diff.numerator / diff.denominator
    doc = result.to_dict()
    assert doc["baseline"]["mae"] == result.baseline_mae
    rare = next(g for g in doc["groups"] if g["key"] == {"seg": "rare"})
    assert rare["baseline_mae"] == exact_mae(a[seg == "rare"], old[seg == "rare"])


def test_max_mae_gate(two_models, capsys):
    path, a, new, *_ = two_models
    mae = exact_mae(a, new)
    code, out, err = cli(capsys, "mae", path, "--max-mae", mae * 1.01, "--json")
    assert code == 0 and json.loads(out)["gates"][0]["status"] == "passed"
    code, out, err = cli(capsys, "mae", path, "--max-mae", mae * 0.99, "--json")
    gate = json.loads(out)["gates"][0]
    assert code == 4 and gate == {"gate": "max_mae", "slice": None, "value": mae, "baseline": None,
                                  "threshold": mae * 0.99, "status": "failed"}
    assert "gate failed: max_mae" in err


def test_slice_gate_with_min_slice_size(two_models, capsys):
    path, a, new, old, seg = two_models
    rare = exact_mae(a[seg == "rare"], new[seg == "rare"])
    common = exact_mae(a[seg == "common"], new[seg == "common"])
    threshold = (rare + common) / 2 if rare != common else rare
    worst = max(rare, common)
    code, out, _ = cli(capsys, "mae", path, "--by", "seg", "--gate-slices", "--max-mae", threshold, "--json")
    failed = [g for g in json.loads(out)["gates"] if g["status"] == "failed"]
    assert code == 4 and any(g["slice"] and g["value"] == worst for g in failed)
    code, out, _ = cli(capsys, "mae", path, "--by", "seg", "--gate-slices", "--min-slice-size", 1000,
                       "--max-mae", max(common, exact_mae(a, new)) * 1.0001, "--json")
    assert code == 0 and {json.dumps(g["slice"]) for g in json.loads(out)["gates"]} == {"null", '{"seg": "common"}'}


def test_increase_gate_against_baseline_model(two_models, capsys):
    path, *_ = two_models
    code, out, _ = cli(capsys, "mae", path, "--baseline-prediction", "old", "--max-increase", 0, "--json",
                       "--gate-baseline", "baseline_prediction")
    assert code == 0  # the new model is better than the old one
    code, out, _ = cli(capsys, "mae", path, "--actual", "actual", "--prediction", "old",
                       "--baseline-prediction", "prediction", "--max-increase-percent", 1,
                       "--gate-baseline", "baseline_prediction", "--json")
    gate = json.loads(out)["gates"][0]
    assert code == 4 and gate["value"] > gate["baseline"]


def test_history_and_increase_gate_over_runs(tmp_path, rng, capsys):
    root, history = tmp_path / "logs", tmp_path / "history"
    make_day(root, 1, rng)
    code, out, _ = cli(capsys, "mae", root, "--by", "model", "--history", history, "--max-increase-percent", 5,
                       "--json")
    assert code == 0 and {g["status"] for g in json.loads(out)["gates"]} == {"no_baseline"}
    first = json.loads(out)["mae"]
    code, out, _ = cli(capsys, "mae", root, "--by", "model", "--history", history, "--max-increase-percent", 5,
                       "--json")
    gate = json.loads(out)["gates"][0]
    assert code == 0 and gate["status"] == "passed" and gate["baseline"] == first
    # a worse model lands: the MAE rises by far more than 5%
    a = np.round(rng.lognormal(12, 0.5, 2000), 2)
    write_parquet(root / "date=2026-11-02" / "model=v1" / "part-0.parquet", actual=a, prediction=a * 1.5)
    code, out, err = cli(capsys, "mae", root, "--by", "model", "--history", history, "--max-increase-percent", 5,
                         "--json")
    assert code == 4 and "gate failed: max_increase_percent" in err
    # a failed data run appends nothing
    bad = write_parquet(tmp_path / "bad" / "x.parquet", actual=[float("nan")], prediction=[1.0])
    assert cli(capsys, "mae", bad, "--history", history)[0] == 3
    from l1stream.outputs.history import read

    rows = read(str(history))
    runs = list(dict.fromkeys(r["run_id"] for r in rows))
    assert len(runs) == 3 and len(rows) == 9          # overall + 2 models per run
    assert [r["gates_passed"] for r in rows if r["slice"] == ""] == [True, True, False]
    assert rows[-1]["config_hash"] == rows[0]["config_hash"] and rows[-1]["inputs_fingerprint"] != rows[0][
        "inputs_fingerprint"]
    # the next run compares with the last *passing* run
    code, out, _ = cli(capsys, "mae", root, "--by", "model", "--history", history, "--max-increase-percent", 5,
                       "--json")
    assert json.loads(out)["gates"][0]["baseline"] == first
    code, out, _ = cli(capsys, "history", history, "--overall", "--last", 2)
    assert code == 0 and out.count("(overall)") == 2 and "FAILED" in out
    code, out, _ = cli(capsys, "history", history, "--json")
    assert len(json.loads(out)) == 12
    # as a process, repeatedly: pyarrow's read_table on in-memory sources used to abort at exit
    for _ in range(4):
        proc = subprocess.run([sys.executable, "-m", "l1stream", "history", str(history)], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0 and "terminate" not in proc.stderr, (proc.returncode, proc.stderr[-2000:])


def test_gate_needing_history_without_one_is_a_usage_error(two_models, capsys):
    path, *_ = two_models
    code, _, err = cli(capsys, "mae", path, "--max-increase", 1)
    assert code == 2 and "no history is configured" in err
    code, _, err = cli(capsys, "mae", path + ".missing", "--max-increase", 1)  # checked before reading anything
    assert code == 2 and "no history is configured" in err


def test_relative_date_window(tmp_path, rng):
    import datetime as dt

    today = dt.datetime.now(dt.timezone.utc).date()
    for back in (0, 5, 40):
        day = today - dt.timedelta(days=back)
        write_parquet(tmp_path / f"date={day.isoformat()}" / "p.parquet", actual=[float(back)], prediction=[0.0])
    result = l1stream.evaluate(str(tmp_path), filters="date>=today-30d")
    assert result.count == 2 and result.mae == 2.5


def test_config_with_store_gates_and_history(tmp_path, rng, capsys):
    root = tmp_path / "logs"
    make_day(root, 1, rng)
    config = tmp_path / "nightly.yaml"
    config.write_text(f"""
sources: [{root}]
by: [model]
store: {tmp_path / 'store'}
history: {tmp_path / 'history'}
gates:
  - max_mae: 1.0e+9
  - max_increase_percent: 10
    slices: true
""")
    assert cli(capsys, "run", config, "--json")[0] == 0
    code, out, _ = cli(capsys, "run", config, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["fragments"] == {"read": 0, "reused": 2, "rejected": 0}
    assert {g["status"] for g in doc["gates"]} == {"passed"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"sources: [{root}]\ngates:\n  - max_mae: 1\n    max_increase: 2\n")
    code, out, err = cli(capsys, "run", bad, "--json")
    assert code == 2 and "gates[0]" in err and "exactly one of" in err
    bad.write_text(f"sources: [{root}]\ngates:\n  - max_mae: 1.0e9\n")
    code, out, err = cli(capsys, "run", bad, "--json")
    assert code == 2 and json.loads(out)["error"]["path"] == "gates[0].max_mae" and "1.0e+9" in err
