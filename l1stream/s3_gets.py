"""Whole S3 objects in one signed GET each, with little CPU per request.

botocore's full request path (its event hooks, endpoint rules, retry handler and response parser)
costs about 1.5 ms of CPU per request, all of it on fsspec's one event-loop thread.  Against many
small files that is the bottleneck: 1,000 files took 1.5 s of CPU where the bytes took 0.1 s to
decode, and 100,000 files would take minutes.  Here botocore still decides everything that can go
wrong, but only once per batch: the URL of an object in the bucket (``generate_presigned_url``,
which applies the client's endpoint, addressing style and any custom endpoint) and the
credentials.  Each GET is then signed by botocore's own ``S3SigV4Auth`` (45 us) and sent by
aiohttp, for about a quarter of the CPU.

Nothing is interpreted here beyond success.  An answer other than ``200`` with the expected
length, a connection error or a timeout leaves that object to the caller, which reads it through
s3fs: botocore then retries, follows a region redirect and reports a failure with its bucket, key
and cause.  A refusal (301, 400, 403) also turns the lean path off for that bucket for the rest
of the process, so a misconfiguration costs one batch of extra requests, not one per file.

The lean path is used only where it sends exactly the request botocore would: SigV4 or anonymous
access, no requester-pays, SSE-C or version-aware options, no proxy, TLS verified by default
(:func:`usable`).  :data:`LEAN_GETS` turns it off.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from urllib.parse import quote, urlsplit

LEAN_GETS = True
"""Whether small S3 objects are fetched by :func:`fetch` (False: every GET through s3fs)."""

_REFUSED: set = set()  # buckets whose lean GETs were refused once in this process
_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # filesystem -> (pid, aiohttp session)
_PROBE_KEY = "l1stream-url-probe"
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def usable(fs) -> bool:
    """Whether :func:`fetch` may read from ``fs``: an s3fs filesystem whose requests it can sign as
    botocore would (see the module's description)."""
    if not LEAN_GETS or type(fs).__module__.split(".")[0] != "s3fs":
        return False
    if getattr(fs, "version_aware", False) or getattr(fs, "req_kw", None) or \
            getattr(fs, "s3_additional_kwargs", None) or getattr(fs, "cache_regions", False):
        return False  # requester-pays, SSE-C keys, versions, a client per region: botocore's own
    client_kwargs = getattr(fs, "client_kwargs", None) or {}
    config = getattr(fs, "config_kwargs", None) or {}
    if "verify" in client_kwargs or config.get("proxies") or any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return False
    return config.get("signature_version") in (None, "s3v4")


def fetch(fs, paths: dict, connections: int) -> dict:
    """``{path: bytes}`` for the objects of ``paths`` (``{path: size}``) fetched in one GET each,
    at most ``connections`` in flight; a path left out is the caller's to read through s3fs."""
    from fsspec.asyn import sync

    return sync(fs.loop, _fetch_all, fs, paths, connections)


async def _fetch_all(fs, paths: dict, connections: int) -> dict:
    import asyncio

    import aiohttp

    by_bucket: dict = {}
    for path, size in paths.items():
        bucket, _, key = path.partition("/")
        if key and bucket not in _REFUSED:
            by_bucket.setdefault(bucket, []).append((path, key, size))
    if not by_bucket:
        return {}
    await fs.set_session()
    client = fs.s3
    credentials = None
    if not getattr(fs, "anon", False):
        found = client._get_credentials()  # botocore's own chain: keys, profile, role, web identity
        if found is None:
            return {}
        credentials = await found.get_frozen_credentials()
    region = client.meta.region_name or "us-east-1"
    out: dict = {}
    session = session_for(fs, connections)
    for bucket, objects in by_bucket.items():
        prefix = await _url_prefix(client, bucket)
        if prefix is None:
            continue

        async def one(path, key, size, prefix=prefix, bucket=bucket):
            if bucket in _REFUSED:
                return
            url = prefix + quote(key, safe="/~")
            try:
                async with session.get(_encoded(url), headers=_signed(url, credentials, region),
                                       allow_redirects=False) as response:
                    if response.status in (301, 307, 400, 403):
                        _REFUSED.add(bucket)
                    if response.status != 200:
                        return
                    data = await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                return
            if len(data) == size:
                out[path] = data

        await asyncio.gather(*(one(*entry) for entry in objects))
    return out


def session_for(fs, connections: int):
    """The aiohttp session of ``fs``'s lean GETs, made on its event loop at the first batch and kept
    for the next ones (a task's batch reuses the connections the previous task opened: against a
    real store a new TLS connection costs two round trips and ~1 ms of CPU), at most
    ``connections`` of them; closed with the filesystem, or at exit.  A forked process makes its own."""
    import aiohttp

    held = _SESSIONS.get(fs)
    if held is not None and held[0] == os.getpid() and not held[1].closed:
        return held[1]
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=60)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), timeout=timeout,
                                    auto_decompress=False)
    _SESSIONS[fs] = (os.getpid(), session)
    weakref.finalize(fs, _close, fs.loop, session)
    return session


def _close(loop, session) -> None:
    """Close ``session`` on its loop if that still runs, else drop its sockets."""
    if session.closed:
        return
    if loop is not None and loop.is_running():
        from fsspec.asyn import sync

        with contextlib.suppress(Exception):  # at exit: the sockets are dropped below if this fails
            sync(loop, session.close, timeout=5)
    if session.closed:
        return
    connector = session.connector
    if connector is not None:
        connector._close()


async def _url_prefix(client, bucket: str) -> str | None:
    """The URL of the bucket's objects up to the key, as botocore builds it (endpoint, path or
    virtual-host addressing), e.g. ``http://127.0.0.1:5000/logs/``."""
    url = await client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": _PROBE_KEY})
    parts = urlsplit(url)
    if not parts.path.endswith("/" + _PROBE_KEY):
        return None
    return f"{parts.scheme}://{parts.netloc}{parts.path[:-len(_PROBE_KEY)]}"


def _signed(url: str, credentials, region: str) -> dict:
    """The headers of a GET of ``url``, signed as botocore signs it (none when anonymous)."""
    if credentials is None:
        return {}
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method="GET", url=url, headers={})
    S3SigV4Auth(credentials, "s3", region).add_auth(request)
    return dict(request.headers.items())


def _encoded(url: str):
    """``url`` as aiohttp must send it: already percent-encoded, byte for byte what was signed."""
    from yarl import URL

    return URL(url, encoded=True)
