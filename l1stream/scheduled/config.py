"""Job config files (YAML or TOML): load, override, validate with key paths in every message.

A config describes one evaluation (see ``configs/*.yaml`` for commented examples)::

    sources:                      # required: paths, or mappings with per-source settings
      - path: data/logs/          # str or list of str (files, directories, globs, URLs)
        storage_options: {}       # fsspec options for this source
        columns: {actual: y, prediction: yhat}   # overrides the top-level columns
    columns: {actual: actual, prediction: prediction, weight: null, baseline_prediction: null}
    by: [model]
    filters: ["date>=2026-11-10"]
    nan_policy: raise             # raise | omit | propagate
    on_bad_file: raise            # raise | skip
    allow_skipped: false
    scheduler: threads            # threads | processes | synchronous | tcp://host:port
    scheduler_file: null          # or the JSON file 'dask scheduler --scheduler-file' writes
    num_workers: null
    storage_options: {}           # default fsspec options for every source
    output: {json: results/mae.json, losses: null, report: results/report.html,
             mlflow: null}              # or {experiment: NAME, tracking_uri: sqlite:///mlflow.db, run_name: null}
    report: {quantiles: [0.9, 0.99], bins: null, time_key: auto, confidence: 0.95, title: null}
    cluster: null                 # or {kind: local|slurm|kubernetes|gateway|address, workers: N, options: {...}}
    store: null                   # state store dir/URL: re-runs read only new or changed files
    history: null                 # metrics history dir/URL: one Parquet file appended per run
    gates: []                     # [{max_mae: X}, {max_increase_percent: 5, slices: true, min_slice_size: 1000},
                                  #  {max_increase: 0, baseline: baseline_prediction, significant: true}]

Relative local paths are relative to the working directory.  Unknown keys, wrong
types and missing required keys fail at load time, naming the key path
(``sources[1].columns.actual``) and the expected type.
"""

from __future__ import annotations

import os
from typing import Any

from l1stream.errors import ConfigError, did_you_mean

_COLUMN_KEYS = {"actual": "str", "prediction": "str", "weight": "str|null", "baseline_prediction": "str|null"}
_SOURCE_KEYS = {"path": "str|list[str]", "storage_options": "mapping", "columns": "columns", "filters": "filters",
                "format": "enum:auto,parquet,delta,iceberg", "version": "int|null", "catalog": "mapping"}
_OUTPUT_KEYS = {"json": "str|null", "losses": "str|null", "report": "str|null", "mlflow": "mlflow|null"}
_MLFLOW_KEYS = {"tracking_uri": "str|null", "experiment": "str", "run_name": "str|null"}
_REPORT_KEYS = {"quantiles": "list[number]", "bins": "list[number]|null", "time_key": "str|null",
                "confidence": "number", "title": "str|null"}
TOP_KEYS = {
    "sources": "sources", "columns": "columns", "by": "str|list[str]", "filters": "filters",
    "nan_policy": "enum:raise,omit,propagate", "on_bad_file": "enum:raise,skip", "allow_skipped": "bool",
    "scheduler": "str|null", "scheduler_file": "str|null", "num_workers": "int|null", "chunk_rows": "int",
    "task_bytes": "int", "storage_options": "mapping", "output": "output", "cluster": "cluster", "store": "str|null",
    "history": "str|null", "gates": "gates", "report": "report",
}
DEFAULTS: dict[str, Any] = {"columns": {"actual": "actual", "prediction": "prediction", "weight": None,
                        "baseline_prediction": None}, "by": [],
            "filters": [], "nan_policy": "raise", "on_bad_file": "raise", "allow_skipped": False,
            "scheduler": None, "scheduler_file": None, "num_workers": None, "chunk_rows": 1 << 20,
            "task_bytes": 64 << 20,
            "storage_options": {}, "output": {"json": None, "losses": None, "report": None, "mlflow": None},
            "cluster": None, "store": None, "history": None, "gates": [],
            "report": {"quantiles": [0.9, 0.99], "bins": None, "time_key": "auto", "confidence": 0.95, "title": None}}


def load_config(path: str, overrides=()) -> dict:
    """Read, override (``key.path=value`` strings) and validate a config; return it normalised."""
    raw = _parse_file(path)
    for item in overrides:
        apply_override(raw, item)
    return validate_config(raw)


def _parse_file(path: str) -> dict:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path!r}: {exc.strerror or exc}", path=path) from exc
    text = data.decode("utf-8", errors="replace")
    if path.endswith(".toml"):
        import tomllib

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: TOML syntax error: {exc}", path=path) from exc
    else:
        import yaml

        try:
            raw = yaml.load(text, Loader=_bounded_loader())  # noqa: S506 (a SafeLoader with an alias limit)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{path}: YAML syntax error{where}: {problem}", path=path) from exc
        size = _expanded_size(raw)
        if size > MAX_NODES:
            raise ConfigError(f"{path}: the YAML expands to over {MAX_NODES:,} values through its aliases (*name); "
                              f"refused as an alias bomb", path=path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values; got a {_type_name(raw)}", path=path)
    return raw


MAX_ALIASES = 100  # a config needs a few; billion-laughs bombs need thousands
MAX_NODES = 100_000  # values in the config once every alias is expanded


def _expanded_size(value, memo=None) -> int:
    """How many values ``value`` holds with aliases expanded (shared objects counted each time),
    computed without expanding: each distinct object is sized once."""
    memo = {} if memo is None else memo
    if not isinstance(value, (list, dict)):
        return 1
    key = id(value)
    if key not in memo:
        memo[key] = 0  # a recursive alias: counted once
        children = value.values() if isinstance(value, dict) else value
        memo[key] = 1 + sum(_expanded_size(child, memo) for child in children)
    return memo[key]


def _bounded_loader():
    """PyYAML's SafeLoader, refusing documents with more than :data:`MAX_ALIASES` aliases: an alias
    bomb (billion laughs) expands exponentially when walked, so it is refused while parsing."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    event = self.peek_event()
                    raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (*name) near line "
                                         f"{event.start_mark.line + 1}: refused as an alias bomb")
            return super().compose_node(parent, index)

    return BoundedLoader


_KEY_PATH = __import__("re").compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*\Z")


def apply_override(raw: dict, item: str) -> None:
    """Apply ``key.path=value`` (value parsed as YAML: ``omit``, ``3``, ``[a, b]``, ``null``)."""
    import re

    import yaml

    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects KEY=VALUE (e.g. nan_policy=omit, columns.actual=y); got {item!r}",
                          path=key or item)
    if not _KEY_PATH.match(key):
        raise ConfigError(f"--set {item!r}: {key!r} is not a key path; write keys separated by dots, with [N] for "
                          f"list items (columns.actual=y, sources[0].path=logs/)", path=key)
    try:
        parsed = yaml.safe_load(value) if value else ""
    except yaml.YAMLError:
        parsed = value
    tokens = re.findall(r"[^.\[\]]+|\[\d+\]", key)
    target = raw
    for i, token in enumerate(tokens):
        last = i == len(tokens) - 1
        if token.startswith("["):
            index = int(token[1:-1])
            if not isinstance(target, list) or index >= len(target):
                where = "".join(t if t.startswith("[") or j == 0 else "." + t for j, t in enumerate(tokens[:i + 1]))
                raise ConfigError(f"--set {item!r}: {where} does not exist in the config", path=where)
            if last:
                target[index] = parsed
            else:
                target = target[index]
        else:
            if not isinstance(target, dict):
                raise ConfigError(f"--set {item!r}: cannot set a key inside a {_type_name(target)}", path=key)
            if last:
                target[token] = parsed
            else:
                target = target.setdefault(token, {})


def validate_config(raw: dict) -> dict:
    """Check keys and types (see module doc); fill defaults; return a new dict."""
    if "source" in raw and "sources" not in raw:
        raw = dict(raw)
        raw["sources"] = [raw.pop("source")]
    _check_keys(raw, TOP_KEYS, "")
    if "sources" not in raw:
        raise ConfigError("sources: missing required key 'sources' (a list of paths or {path: ...} mappings)",
                          path="sources")
    config = {k: _copy(v) for k, v in DEFAULTS.items()}
    for key, value in raw.items():
        config[key] = _check(value, TOP_KEYS[key], key)
    config["columns"] = {**DEFAULTS["columns"], **config["columns"]}
    config["output"] = {**DEFAULTS["output"], **config["output"]}
    config["report"] = {**DEFAULTS["report"], **config["report"]}
    if isinstance(config["by"], str):
        config["by"] = [config["by"]]
    return config


def _copy(value):
    return {k: _copy(v) for k, v in value.items()} if isinstance(value, dict) else (
        list(value) if isinstance(value, list) else value)


def _check(value, kind: str, path: str):
    if kind == "sources":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise ConfigError(_expected(path, "a non-empty list of sources", value), path=path)
        return [_source(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if kind == "columns":
        _mapping(value, path)
        _check_keys(value, _COLUMN_KEYS, path)
        return {k: _check(v, _COLUMN_KEYS[k], f"{path}.{k}") for k, v in value.items()}
    if kind == "output":
        _mapping(value, path)
        _check_keys(value, _OUTPUT_KEYS, path)
        return {k: _check(v, _OUTPUT_KEYS[k], f"{path}.{k}") for k, v in value.items()}
    if kind == "mlflow|null":
        if value is None:
            return None
        _mapping(value, path)
        _check_keys(value, _MLFLOW_KEYS, path)
        if "experiment" not in value:
            raise ConfigError(f"{path}: missing required key 'experiment' (the MLflow experiment to log to)",
                              path=f"{path}.experiment")
        return {k: _check(v, _MLFLOW_KEYS[k], f"{path}.{k}") for k, v in value.items()}
    if kind == "report":
        _mapping(value, path)
        _check_keys(value, _REPORT_KEYS, path)
        return {k: _check(v, _REPORT_KEYS[k], f"{path}.{k}") for k, v in value.items()}
    if kind == "filters":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(_expected(path, "a list of filters ('date>=2026-11-10' or [column, op, value])",
                                        value), path=path)
        for i, f in enumerate(value):
            if not (isinstance(f, str) or isinstance(f, list) and len(f) == 3):
                raise ConfigError(_expected(f"{path}[{i}]", "a filter string or a [column, op, value] list", f),
                                  path=f"{path}[{i}]")
        return [tuple(f) if isinstance(f, list) else f for f in value]
    if kind == "mapping":
        return _mapping(value, path)
    if kind == "gates":
        from l1stream.errors import UsageError
        from l1stream.scheduled.gates import validate_gates

        if not isinstance(value, list):
            raise ConfigError(_expected(path, "a list of gates ({max_mae: X}, {max_increase_percent: X})", value),
                              path=path)
        try:
            validate_gates(value)
        except UsageError as exc:
            where = exc.message.split(":", 1)[0]
            raise ConfigError(exc.message, path=where) from exc
        return value
    if kind == "cluster":
        from l1stream.engine.clusters import validate_cluster
        from l1stream.errors import UsageError

        if value is None:
            return None
        _mapping(value, path)
        try:
            return validate_cluster(value)
        except UsageError as exc:
            raise ConfigError(exc.message, path=path) from exc
    if kind.startswith("enum:"):
        allowed = kind[5:].split(",")
        if value not in allowed:
            raise ConfigError(f"{path}: expected one of {', '.join(allowed)}; got {value!r}", path=path)
        return value
    for option in kind.split("|"):
        if _is(value, option):
            if option == "int":
                _check_range(value, path)
            return value
    raise ConfigError(_expected(path, _KIND_TEXT.get(kind, kind), value), path=path)


# the largest value each integer key may take (a typo like 10**30 fails here, with its key)
_INT_LIMITS = {"num_workers": 10_000, "chunk_rows": 1 << 31, "task_bytes": 1 << 48, "version": (1 << 63) - 1}


def _check_range(value: int, path: str) -> None:
    key = path.rsplit(".", 1)[-1]
    limit = _INT_LIMITS.get(key, (1 << 63) - 1)
    low = 0 if key == "version" else 1
    if not low <= value <= limit:
        raise ConfigError(f"{path}: expected an integer from {low} to {limit:,}; got {value:,}", path=path)


_KIND_TEXT = {"str": "a string", "str|null": "a string or null", "str|list[str]": "a string or a list of strings",
              "bool": "true or false", "int": "an integer", "int|null": "an integer or null",
              "number": "a number", "list[number]": "a list of numbers",
              "list[number]|null": "a list of numbers or null"}


def _is(value, option: str) -> bool:
    if option == "null":
        return value is None
    if option == "str":
        return isinstance(value, str) and value != ""
    if option == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    if option == "bool":
        return isinstance(value, bool)
    if option == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if option == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if option == "list[number]":
        return isinstance(value, list) and all(_is(v, "number") for v in value)
    return False


def _source(value, path: str) -> dict:
    if isinstance(value, (str, os.PathLike)):
        value = {"path": os.fspath(value)}
    _mapping(value, path)
    _check_keys(value, _SOURCE_KEYS, path)
    if "path" not in value:
        raise ConfigError(f"{path}.path: missing required key 'path'", path=f"{path}.path")
    return {k: _check(v, _SOURCE_KEYS[k], f"{path}.{k}") for k, v in value.items()}


def _mapping(value, path: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(_expected(path, "a mapping", value), path=path)
    return value


def _check_keys(value: dict, allowed: dict, path: str) -> None:
    for key in value:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(f"{where}: unknown key{did_you_mean(key, allowed)}; allowed keys here: "
                              f"{', '.join(allowed)}", path=where)


def _expected(path: str, what: str, value) -> str:
    return f"{path}: expected {what}; got {_type_name(value)} {value!r}"


def _type_name(value) -> str:
    return {type(None): "null", bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)
