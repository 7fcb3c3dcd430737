"""Log an evaluation to MLflow: the overall and per-slice metrics, the JSON result and the report.

One MLflow run per evaluation, in ``experiment`` (created if missing) of the tracking store at
``tracking_uri`` (``sqlite:///mlflow.db``, ``http://mlflow:5000``, or MLflow's own default when
None).  Metric keys use only what MLflow accepts (letters, digits, ``_ - . : /`` and spaces): the
overall figures are ``mae``, ``count``, ``rows_read``, ``left_out.nan``, ...; a slice's are
``mae/model:v1`` (``mae/model:v1/region:north`` for several keys), any other character of a slice
value becoming ``_`` (two slices that would then share a key are an error, not a silent merge).
Parameters record the columns, ``by``, the filters and the policy; tags the l1stream version and
whether the gates passed.  Requires ``pip install "l1stream[mlflow]"``.
"""

from __future__ import annotations

import json
import re
import time

from l1stream.errors import OutputError, UsageError, first_line

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :/]")
_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def metric_key(name: str, by: tuple = (), key: tuple = ()) -> str:
    """The MLflow metric key of ``name`` for one slice (or overall, without ``by``).

    Examples
    --------
    >>> metric_key("mae")
    'mae'
    >>> metric_key("mae", ("model", "region"), ("v1", "north-east"))
    'mae/model:v1/region:north-east'
    >>> metric_key("count", ("model",), ("a=b",))
    'count/model:a_b'
    """
    parts = [name] + [f"{_UNSAFE.sub('_', str(k))}:{_UNSAFE.sub('_', 'null' if v is None else str(v))}"
                      for k, v in zip(by, key)]
    return "/".join(parts)


def result_metrics(result) -> dict:
    """Every metric of ``result``, overall and per slice, by MLflow key."""
    metrics = {"mae": result.mae, "count": result.count, "rows_read": result.rows_read}
    metrics.update({f"left_out.{reason}": n for reason, n in result.left_out.items()})
    if result.weighted:
        metrics["weight_sum"] = float(result.weight_sum)
    if result.baseline_column is not None:
        metrics["baseline_mae"], metrics["difference"] = result.baseline_mae, result.difference
    for key, numbers in result.slice_numbers().items() if result.by else ():
        for name in ("mae", "count"):
            slice_key = metric_key(name, result.by, key)
            if slice_key in metrics:
                raise UsageError(f"two slices give the MLflow metric {slice_key!r} once their values are made "
                                 f"safe for MLflow keys; rename the slice values, or log without --by")
            metrics[slice_key] = numbers[name]
    return metrics


def log_run(result, settings: dict, *, document: dict, artifacts=(), gates_passed: bool | None = None) -> str:
    """Log ``result`` as one MLflow run; return its run id.

    ``settings``: ``tracking_uri`` (optional), ``experiment`` (required), ``run_name`` (optional).
    ``document`` is logged as ``l1stream/result.json``; ``artifacts`` (local paths: the report) under
    ``l1stream/``.  A store that cannot be reached or written is an :class:`OutputError`.
    """
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UsageError('logging to MLflow needs the mlflow package: pip install "l1stream[mlflow]"') from None
    from l1stream._version import __version__

    experiment = settings.get("experiment")
    if not isinstance(experiment, str) or not experiment:
        raise UsageError(f"mlflow.experiment must name an experiment; got {experiment!r}")
    metrics = result_metrics(result)
    uri = settings.get("tracking_uri")
    try:
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
        tags = {"l1stream.version": __version__, "l1stream.source": json.dumps(result.source, default=str)}
        if gates_passed is not None:
            tags["l1stream.gates_passed"] = str(gates_passed).lower()
        run = client.create_run(experiment_id, run_name=settings.get("run_name"), tags=tags)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        entries = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        params = [Param("actual", result.columns.get("actual") or ""),
                  Param("prediction", result.columns.get("prediction") or ""),
                  Param("weight", str(result.columns.get("weight"))), Param("by", ",".join(result.by)),
                  Param("filters", "; ".join(result.filters)[:6000]), Param("nan_policy", result.nan_policy)]
        for start in range(0, len(entries), _BATCH):
            client.log_batch(run_id, metrics=entries[start:start + _BATCH],
                             params=params if start == 0 else [], tags=[RunTag("l1stream.run", "1")] if not start
                             else [])
        client.log_dict(run_id, document, "l1stream/result.json")
        for path in artifacts:
            client.log_artifact(run_id, path, "l1stream")
        client.set_terminated(run_id, "FINISHED")
    except UsageError:
        raise
    except Exception as exc:  # mlflow raises its own, requests' and OS errors: all mean "not logged"
        where = uri or "MLflow's default tracking store"
        raise OutputError(f"could not log the run to MLflow at {where} (experiment {experiment!r}): "
                          f"{type(exc).__name__}: {first_line(exc, '')}; nothing else was affected, "
                          f"outputs written so far stay", path=uri) from None
    return run_id
