"""JSON Schemas (draft 2020-12) of what l1stream writes and reads: the ``--json`` result and the job config.

Both are built from the code: the config schema from the key tables the config loader validates
with (:mod:`l1stream.scheduled.config`), the result schema beside the fields
:meth:`~l1stream.engine.result.EvaluationResult.to_dict` writes, strict (no unknown keys), so a test
that validates real outputs against it fails the day a key is added without it.  ``l1stream schema
result|config`` prints them; ``docs/schema/`` holds the generated files (a test keeps them current).

>>> result_schema()["properties"]["schema_version"]
{'const': 1}
>>> config_schema()["properties"]["nan_policy"]
{'enum': ['raise', 'omit', 'propagate']}
"""

from __future__ import annotations

DIALECT = "https://json-schema.org/draft/2020-12/schema"

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_COUNT = {"type": "integer", "minimum": 0}
_LEFT_OUT = {"type": "object", "additionalProperties": False, "required": ["null", "nan", "inf"],
             "properties": {"null": _COUNT, "nan": _COUNT, "inf": _COUNT}}


def _object(properties: dict, required=None, **extra) -> dict:
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": list(properties if required is None else required), **extra}


def result_schema() -> dict:
    """The ``--json`` document of ``mae``, ``run`` and ``demo`` (``schema_version`` 1)."""
    from l1stream.engine.result import SCHEMA_VERSION

    key = {"type": "object", "description": "slice key: by column -> value (string, number, boolean, null)",
           "additionalProperties": {"type": ["string", "number", "integer", "boolean", "null"]}}
    group = _object({"key": key, "mae": _NUMBER_OR_NULL, "count": _COUNT, "rows_read": _COUNT,
                     "left_out_null": _COUNT, "left_out_nan": _COUNT, "left_out_inf": _COUNT,
                     "baseline_mae": _NUMBER_OR_NULL, "difference": _NUMBER_OR_NULL},
                    required=["key", "mae", "count", "rows_read", "left_out_null", "left_out_nan", "left_out_inf"])
    gate = _object({"gate": {"type": "string"}, "slice": {"anyOf": [key, {"type": "null"}]},
                    "value": _NUMBER_OR_NULL, "baseline": _NUMBER_OR_NULL, "threshold": {"type": "number"},
                    "status": {"enum": ["passed", "failed", "no_baseline"]}})
    table = _object({"format": {"enum": ["delta", "iceberg"]}, "root": {"type": "string"},
                     "table_version": {"type": ["integer", "null"]}})
    file_report = _object({"rows_read": _COUNT, "rows_used": _COUNT, "left_out": _LEFT_OUT,
                           "rows_filtered": _COUNT, "row_groups": _COUNT, "row_groups_pruned": _COUNT})
    column = {"type": ["string", "null"]}
    return {
        "$schema": DIALECT, "$id": "l1stream-result.schema.json",
        "title": "l1stream result (mae/run/demo --json)",
        **_object({
            "schema_version": {"const": SCHEMA_VERSION},
            "mae": {**_NUMBER_OR_NULL, "description": "correctly rounded; null when NaN (nan_policy=propagate)"},
            "count": _COUNT, "rows_read": _COUNT, "left_out": _LEFT_OUT, "weighted": {"type": "boolean"},
            "weight_sum": _NUMBER_OR_NULL, "abs_error_sum": _NUMBER_OR_NULL,
            "nan_policy": {"enum": ["raise", "omit", "propagate"]},
            "columns": _object({"actual": {"type": "string"}, "prediction": {"type": "string"}, "weight": column,
                                "baseline_prediction": column}),
            "filters": {"type": "array", "items": {"type": ["string", "array"]}},
            "by": {"type": "array", "items": {"type": "string"}},
            "source": _object({"format": {"enum": ["parquet", "delta", "iceberg", "mixed"]},
                               "table_version": {"type": ["integer", "null"]},
                               "tables": {"type": "array", "items": table}}),
            "files": _object({"selected": _COUNT, "pruned_by_partition_filters": _COUNT,
                              "directories_not_listed": {**_COUNT, "description": "partition directories on "
                                                         "object storage the filters kept from being listed"},
                              "skipped": {"type": "array", "items": _object({"path": {"type": "string"},
                                                                             "reason": {"type": "string"}})},
                              "duplicates": {"type": "array", "items": {"type": "string"}},
                              "ignored_hidden_or_temporary": _COUNT}),
            "fragments": _object({"read": _COUNT, "reused": _COUNT, "rejected": _COUNT}),
            "baseline": {"anyOf": [{"type": "null"}, _object({"column": {"type": "string"}, "mae": _NUMBER_OR_NULL,
                                                              "difference": _NUMBER_OR_NULL})]},
            "gates": {"anyOf": [{"type": "null"}, {"type": "array", "items": gate}]},
            "scheduler": {"type": "string"},
            "elapsed_seconds": {"type": "number", "minimum": 0},
            "groups": {"type": "array", "items": group, "description": "one per slice, with by"},
            "file_reports": {"type": "object", "additionalProperties": file_report, "description": "--per-file"},
        }, required=["schema_version", "mae", "count", "rows_read", "left_out", "weighted", "weight_sum",
                     "abs_error_sum", "nan_policy", "columns", "filters", "by", "source", "files", "fragments",
                     "baseline", "gates", "scheduler", "elapsed_seconds"]),
    }


def config_schema() -> dict:
    """The job config of ``l1stream run`` (YAML or TOML), from the tables its loader checks against."""
    from l1stream.scheduled import config

    def kind(text: str, key: str = "") -> dict:
        if text.startswith("enum:"):
            return {"enum": text[5:].split(",")}
        named = {
            "columns": lambda: _object({k: kind(v) for k, v in config._COLUMN_KEYS.items()}, required=[]),
            "output": lambda: _object({k: kind(v) for k, v in config._OUTPUT_KEYS.items()}, required=[]),
            "report": lambda: _object({k: kind(v) for k, v in config._REPORT_KEYS.items()}, required=[]),
            "mlflow|null": lambda: {"anyOf": [{"type": "null"}, _object(
                {k: kind(v) for k, v in config._MLFLOW_KEYS.items()}, required=["experiment"])]},
            "sources": lambda: {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {
                "anyOf": [{"type": "string"},
                          _object({k: kind(v, k) for k, v in config._SOURCE_KEYS.items()}, required=["path"])]}}]},
            "filters": lambda: {"anyOf": [{"type": "string"}, {"type": "array", "items": {"anyOf": [
                {"type": "string"}, {"type": "array", "minItems": 3, "maxItems": 3}]}}]},
            "mapping": lambda: {"type": "object"},
            "gates": lambda: {"type": "array", "items": {"type": "object"},
                              "description": "[{max_mae: X}, {max_increase_percent: P, slices: true}]"},
            "cluster": lambda: {"type": ["object", "null"],
                                "description": "{kind: local|slurm|kubernetes|gateway|address, workers, options}"},
        }
        if text in named:
            return named[text]()
        types: list[dict] = []
        for option in text.split("|"):
            simple: dict[str, dict] = {"str": {"type": "string", "minLength": 1}, "null": {"type": "null"},
                          "bool": {"type": "boolean"}, "number": {"type": "number"},
                          "int": _int(key), "list[str]": {"type": "array", "items": {"type": "string", "minLength": 1}},
                          "list[number]": {"type": "array", "items": {"type": "number"}}}
            types.append(simple[option])
        return types[0] if len(types) == 1 else {"anyOf": types}

    def _int(key: str) -> dict:
        low = 0 if key == "version" else 1
        return {"type": "integer", "minimum": low, "maximum": config._INT_LIMITS.get(key, (1 << 63) - 1)}

    return {"$schema": DIALECT, "$id": "l1stream-config.schema.json", "title": "l1stream job config (l1stream run)",
            **_object({k: kind(v, k) for k, v in config.TOP_KEYS.items()}, required=["sources"])}


SCHEMAS = {"result": result_schema, "config": config_schema}
