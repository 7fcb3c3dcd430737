"""Real services for tests, started on loopback and always torn down.

Each child runs in its own process group (so its children go with it) and gets
``PR_SET_PDEATHSIG`` so that it dies even if pytest is SIGKILLed.  When a
service's binaries are missing, tests skip, unless ``L1STREAM_REQUIRE_SERVICES=1``
(set by ``.ci/run``), where a missing service is a failure.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import time

import pytest

REQUIRE = os.environ.get("L1STREAM_REQUIRE_SERVICES") == "1"


def need_module(name: str):
    """Import a test dependency, or skip (in CI: fail) naming what to install."""
    try:
        return __import__(name, fromlist=["_"])
    except ImportError as exc:
        need(False, f"{name} is not installed ({exc}); pip install -e '.[test]'")


def need_native_decoder() -> None:
    """At module level: skip a module that tests the C page decoder when it is not built, except in
    CI (``L1STREAM_REQUIRE_NATIVE=1``), where a missing build fails."""
    from l1stream.parquet import pages

    if pages._pages is not None:
        return
    if os.environ.get("L1STREAM_REQUIRE_NATIVE") == "1":
        raise RuntimeError("L1STREAM_REQUIRE_NATIVE=1 but the C page decoder is not built "
                           "(pip install -e . needs a C compiler and the Python headers)")
    pytest.skip("the C page decoder is not built", allow_module_level=True)


def need(condition: bool, reason: str) -> None:
    """Skip (or, in CI, fail) when a service cannot run here."""
    if condition:
        return
    if REQUIRE:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


def _die_with_parent():
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start(argv, *, log_path, env=None, cwd=None) -> subprocess.Popen:
    """Start a child in its own session, output to ``log_path``."""
    log = open(log_path, "wb")  # fresh: readers parse it (moto prints its port)
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
                            preexec_fn=_die_with_parent)


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate a child's whole process group (SIGTERM, then SIGKILL)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for(predicate, timeout: float, what: str, log_path=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    tail = ""
    if log_path and os.path.exists(log_path):
        with open(log_path, errors="replace") as handle:
            tail = "\n" + "".join(handle.readlines()[-30:])
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}{tail}")


def start_moto(log_path) -> tuple[subprocess.Popen, str]:
    """moto's S3 server on 127.0.0.1, a free port; returns (process, endpoint URL)."""
    proc = start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"], log_path=log_path)

    def endpoint():
        with open(log_path, errors="replace") as handle:
            match = re.search(r"Running on (http://127\.0\.0\.1:\d+)", handle.read())
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        return match.group(1) if match else None

    try:
        return proc, wait_for(endpoint, 60, "moto server", log_path)
    except BaseException:
        stop(proc)
        raise
