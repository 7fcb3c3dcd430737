"""The lean S3 GETs (``l1stream.s3_gets``) on a moto server that checks every request's SigV4
signature and the caller's IAM policy, as S3 does: the requests signed here are accepted, keys
with any character reach the right object, and whatever is refused or missing is read through
s3fs instead, with the same bits or the same located error."""

from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import Oracle, assert_exact, delete_after_listing
from services import need_module, start_moto, stop

import l1stream
from l1stream import s3_gets
from l1stream.errors import BadFileError

KEYS = ["plain/part-0.parquet", "spaced out/part 1.parquet", "tilde~/part-2.parquet", "deep/a/b/c/d/part-3.parquet"]
ODD_KEYS = ["date=2026-11-01/p.parquet", "sp ace.parquet", "plus+.parquet", "amp&.parquet", "pct%20.parquet",
            "uni-ü ñ 😀.parquet", "tilde~.parquet", "q'(s)!*.parquet", "co:lon.parquet", "at@.parquet",
            "dollar$.parquet", "comma,.parquet", "semi;colon.parquet", "hash#.parquet", "brackets[1].parquet"]


def authenticate(endpoint: str, on: bool) -> None:
    """moto checks every request's signature and the caller's policy from now on (or no longer)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0" if on else b"inf",
                                     method="POST", headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request, timeout=30).read()


@pytest.fixture(scope="module")
def signed_bucket(tmp_path_factory):
    """A moto server that authenticates every request (an IAM user's key, a policy allowing S3), with
    bucket ``signed`` (the files of :data:`KEYS` and their values) and bucket ``odd`` (one small object
    of its own bytes per name of :data:`ODD_KEYS`)."""
    need_module("s3fs")
    import botocore.session
    import s3fs

    base = tmp_path_factory.mktemp("moto-auth")
    log = base / "moto.log"
    proc, endpoint = start_moto(log)
    try:
        root = {"region_name": "us-east-1", "endpoint_url": endpoint, "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing"}
        iam = botocore.session.get_session().create_client("iam", **root)
        iam.create_user(UserName="evaluator")
        iam.put_user_policy(UserName="evaluator", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="evaluator")["AccessKey"]
        options = {"endpoint_url": endpoint, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
        fs = s3fs.S3FileSystem(**options)
        fs.mkdir("signed")
        fs.mkdir("odd")
        rng = np.random.default_rng(7)
        written = []
        for name in KEYS:
            a, p = rng.lognormal(5, 1, 300), rng.lognormal(5, 1, 300)
            written.append((a, p))
            sink = pa.BufferOutputStream()
            pq.write_table(pa.table({"actual": a, "prediction": p}), sink)
            fs.pipe(f"signed/{name}", sink.getvalue().to_pybytes())
        for name in ODD_KEYS:
            fs.pipe(f"odd/{name}", name.encode())
        authenticate(endpoint, True)
        yield endpoint, options, log, Oracle({(): written})
    finally:
        stop(proc)


def gets_since(log, since: int) -> list:
    return [line for line in log.read_text().splitlines()[since:] if re.search(r'"GET /signed/\S+ HTTP', line)]


def test_signed_gets_are_accepted(signed_bucket):
    endpoint, options, log, oracle = signed_bucket
    since = len(log.read_text().splitlines())
    result = l1stream.evaluate("s3://signed/", storage_options=options)
    assert_exact(result, oracle)
    gets = gets_since(log, since)
    assert [line for line in gets if re.search(r'" (301|400|403|404) ', line)] == []
    # every file in one whole GET (and the planner's one footer read for the schema, a ranged GET)
    assert len([line for line in gets if '" 200 ' in line]) == len(KEYS), gets
    assert "signed" not in s3_gets._REFUSED


def test_the_server_accepts_the_same_requests_from_botocore_and_from_here(signed_bucket, monkeypatch):
    """Key by key, a lean GET is accepted exactly when botocore's own GET is: the same request.  (moto
    refuses botocore's signature for keys with some characters, e.g. ``=`` or ``+``; real S3 does not.)"""
    endpoint, options, *_ = signed_bucket
    import s3fs

    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    accepted = []
    for name in ODD_KEYS:
        monkeypatch.setattr(s3_gets, "_REFUSED", set())
        lean = s3_gets.fetch(fs, {f"odd/{name}": len(name.encode())}, 4)
        try:
            botocore_read = fs.cat_file(f"odd/{name}") == name.encode()
        except PermissionError:
            botocore_read = False
        assert (f"odd/{name}" in lean) == botocore_read, name
        accepted.append(botocore_read)
    assert any(accepted) and not all(accepted)  # both kinds were seen: the comparison tested something


def test_every_key_reaches_its_own_object(signed_bucket, monkeypatch):
    endpoint, options, *_ = signed_bucket
    import s3fs

    monkeypatch.setattr(s3_gets, "_REFUSED", set())
    authenticate(endpoint, False)
    try:
        fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
        lean = s3_gets.fetch(fs, {f"odd/{name}": len(name.encode()) for name in ODD_KEYS}, 4)
    finally:
        authenticate(endpoint, True)
    assert lean == {f"odd/{name}": name.encode() for name in ODD_KEYS}


def test_a_wrong_key_is_refused_by_the_server(signed_bucket):
    """The check is real: the same server refuses a request signed with the wrong secret."""
    endpoint, options, *_ = signed_bucket
    from l1stream.errors import SourceError

    with pytest.raises((SourceError, PermissionError, OSError)):
        l1stream.evaluate("s3://signed/", storage_options={**options, "secret": "not-the-secret"})


def test_refused_gets_are_read_through_s3fs_with_the_same_bits(signed_bucket, monkeypatch):
    endpoint, options, log, oracle = signed_bucket
    monkeypatch.setattr(s3_gets, "_REFUSED", set())
    real = s3_gets._signed
    monkeypatch.setattr(s3_gets, "_signed",
                        lambda url, credentials, region: real(url, credentials._replace(secret_key="wrong"), region))
    since = len(log.read_text().splitlines())
    result = l1stream.evaluate("s3://signed/", storage_options=options)
    assert_exact(result, oracle)
    assert "signed" in s3_gets._REFUSED  # refused once: the bucket's next batches go straight to s3fs
    refused = [line for line in gets_since(log, since) if '" 403 ' in line]
    assert 1 <= len(refused) <= len(KEYS)


def test_an_object_gone_since_the_listing_is_a_located_error(signed_bucket, monkeypatch):
    endpoint, options, *_ = signed_bucket
    import s3fs

    fs = s3fs.S3FileSystem(**options)
    fs.pipe("signed/zz/gone.parquet", fs.cat("signed/plain/part-0.parquet"))
    delete_after_listing(monkeypatch, fs, "signed/zz/gone.parquet")
    with pytest.raises(BadFileError, match=r"signed/zz/gone.parquet"):
        l1stream.evaluate("s3://signed/", storage_options=options)


@pytest.mark.parametrize("options, reason", [
    ({"requester_pays": True}, "requester pays adds a header"),
    ({"version_aware": True}, "versions are asked by id"),
    ({"s3_additional_kwargs": {"SSECustomerKey": "k" * 32, "SSECustomerAlgorithm": "AES256"}}, "SSE-C headers"),
    ({"client_kwargs": {"verify": False}}, "TLS settings of the client"),
    ({"config_kwargs": {"signature_version": "s3"}}, "another signature"),
])
def test_lean_gets_only_where_they_send_what_botocore_sends(options, reason):
    need_module("s3fs")
    import s3fs

    assert s3_gets.usable(s3fs.S3FileSystem(key="k", secret="s")), "the plain case"
    assert not s3_gets.usable(s3fs.S3FileSystem(key="k", secret="s", **options)), reason


def test_no_lean_gets_behind_a_proxy(monkeypatch):
    need_module("s3fs")
    import s3fs

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert not s3_gets.usable(s3fs.S3FileSystem(key="k", secret="s"))


def test_batches_share_one_session_and_a_process_ends_with_it_closed(signed_bucket):
    """A task's batch reuses the aiohttp session (and its open connections) of the previous one; a
    process that read through it exits without an unclosed session or connector."""
    import subprocess
    import sys

    endpoint, options, log, oracle = signed_bucket
    import s3fs

    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    wanted = {f"signed/{KEYS[0]}": fs.size(f"signed/{KEYS[0]}")}
    assert s3_gets.fetch(fs, wanted, 4).keys() == wanted.keys()
    session = s3_gets._SESSIONS[fs][1]
    assert s3_gets.fetch(fs, wanted, 4).keys() == wanted.keys()
    assert s3_gets._SESSIONS[fs][1] is session and not session.closed
    script = ("import l1stream\n"
              f"print(l1stream.evaluate('s3://signed/', storage_options={options!r}).mae.hex())")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float.fromhex(done.stdout.strip().splitlines()[-1]) == oracle.mae
    assert "Unclosed" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr[-2000:]
