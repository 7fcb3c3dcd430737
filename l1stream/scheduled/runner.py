"""Run a validated job config (see :mod:`l1stream.scheduled.config`) through the public API."""

from __future__ import annotations

import json

from l1stream.engine.api import evaluate
from l1stream.engine.result import EvaluationResult, combine_results
from l1stream.errors import ConfigError


def source_batches(config: dict) -> list:
    """Sources grouped by (columns, filters, storage options, table format and version):
    ``[(columns, filters, storage, paths, table)]`` where ``table`` is ``{"format", "table_version"}``."""
    batches: dict[str, tuple] = {}
    for source in config["sources"]:
        columns = {**config["columns"], **source.get("columns", {})}
        filters = list(config["filters"]) + list(source.get("filters", []))
        storage = {**config["storage_options"], **source.get("storage_options", {})}
        table = {"format": source.get("format", "auto"), "table_version": source.get("version"),
                 "catalog": source.get("catalog")}
        key = json.dumps([columns, [list(f) if isinstance(f, tuple) else f for f in filters], storage, table],
                         sort_keys=True, default=str)
        paths = source["path"] if isinstance(source["path"], list) else [source["path"]]
        batches.setdefault(key, (columns, filters, storage, [], table))[3].extend(paths)
    return list(batches.values())


def write_config_losses(config: dict) -> dict | None:
    """Write ``output.losses`` (if set) with the sources' own columns, filters and storage options."""
    target = config["output"]["losses"]
    if not target:
        return None
    from l1stream.outputs.losses import write_losses

    (columns, filters, storage, paths, table), = source_batches(config)  # run_config checked there is one
    if table["format"] not in ("auto", "parquet") or table["table_version"] is not None:
        raise ConfigError("output.losses reads the sources' current files; a source's format/version is not "
                          "supported there yet", path="output.losses")
    return write_losses(paths, target, actual=columns["actual"], prediction=columns["prediction"],
                        by=config["by"] or None, filters=filters or None, nan_policy=config["nan_policy"],
                        scheduler=config["scheduler"], num_workers=config["num_workers"],
                        storage_options=storage or None, chunk_rows=config["chunk_rows"], cluster=config["cluster"])


def config_report_job(config: dict):
    """The :class:`~l1stream.report.ReportJob` of ``output.report`` (or ``None``), made before any
    work so that its names and options are checked first."""
    if not config["output"]["report"]:
        return None
    from l1stream.report.job import ReportJob

    batches = source_batches(config)
    if len(batches) > 1:
        raise ConfigError("output.report profiles one dataset, so every source must share columns, filters and "
                          "storage options", path="output.report")
    if config.get("cluster"):
        raise ConfigError("output.report runs extra passes on the scheduler; with a cluster config use "
                          "scheduler: tcp://host:port (an existing cluster) instead of cluster:",
                          path="output.report")
    (columns, filters, storage, paths, table), = batches
    options = config["report"]
    return ReportJob(paths, **_batch_options(config, columns, filters, storage, table), scheduler=_scheduler(config),
                     baseline_prediction=columns.get("baseline_prediction"), quantiles=tuple(options["quantiles"]),
                     bins=options["bins"], time_key=options["time_key"],
                     confidence=options["confidence"], title=options["title"])


def _scheduler(config: dict):
    """The config's scheduler: ``scheduler``, or the address in ``scheduler_file``."""
    if not config.get("scheduler_file"):
        return config["scheduler"]
    if config["scheduler"]:
        raise ConfigError("give either scheduler or scheduler_file, not both", path="scheduler_file")
    from l1stream.engine.schedulers import scheduler_from_file

    return scheduler_from_file(config["scheduler_file"])


def _batch_options(config: dict, columns: dict, filters: list, storage: dict, table: dict) -> dict:
    """The options of ``evaluate`` for one batch of sources (see :func:`source_batches`)."""
    return {"actual": columns["actual"], "prediction": columns["prediction"], "weight": columns["weight"],
            "by": config["by"] or None, "filters": filters or None, "nan_policy": config["nan_policy"],
            "on_bad_file": config["on_bad_file"], "num_workers": config["num_workers"],
            "storage_options": storage or None, "chunk_rows": config["chunk_rows"], "task_bytes": config["task_bytes"],
            "format": table["format"], "table_version": table["table_version"], "catalog": table["catalog"]}


def profile_config_report(job, result: EvaluationResult, config: dict):
    """Profile ``result`` with ``job`` (see :func:`config_report_job`): the Report, or None without one."""
    return None if job is None else job.profile(result, history=config["history"])


def write_config_report(report, config: dict) -> str | None:
    """Write ``report`` (from :func:`profile_config_report`) to ``output.report``; its path, or None."""
    if report is None:
        return None
    return report.write_html(config["output"]["report"], config["storage_options"] or None)


def run_config(config: dict, *, progress: bool = False, full: bool = False) -> EvaluationResult:
    """Evaluate every source of ``config`` and merge them exactly into one result.

    Sources that share columns, filters and storage options are read in one job;
    the others are evaluated separately and their exact states merged.
    """
    batches = source_batches(config)
    if config["output"]["losses"] and len(batches) > 1:
        raise ConfigError("output.losses writes one dataset, so every source must share columns, filters and "
                          "storage options", path="output.losses")
    if config.get("cluster") and (config["scheduler"] or config.get("scheduler_file")):
        raise ConfigError("give either scheduler (an existing scheduler) or cluster (one to start), not both",
                          path="cluster")

    def run(scheduler):
        return [
            evaluate(paths, **_batch_options(config, columns, filters, storage, table), scheduler=scheduler,
                     progress=progress, store=config["store"], full=full,
                     baseline_prediction=columns.get("baseline_prediction"))
            for columns, filters, storage, paths, table in batches
        ]

    if config.get("cluster"):
        from l1stream.engine.clusters import cluster_client

        with cluster_client(config["cluster"]) as client:
            results = run(client)
    else:
        results = run(_scheduler(config))
    return results[0] if len(results) == 1 else combine_results(results)


def check_config_outputs(config: dict) -> None:
    """Refuse outputs, store or history inside a source (before any work)."""
    from l1stream.sources.discovery import check_outputs_outside_sources

    outputs = {"output.json": config["output"]["json"], "output.report": config["output"]["report"],
               "output.losses": config["output"]["losses"], "store": config["store"], "history": config["history"]}
    from l1stream.storage import check_writable

    for _, _, storage, paths, _ in source_batches(config):
        check_outputs_outside_sources(paths, outputs, storage or None, directories=("output.losses",))
    check_writable(outputs, config["storage_options"] or None)


def prepare_gates(gates, history: str | None) -> list:
    """Validate gates and that a history exists where one is compared with: before any work runs."""
    from l1stream.scheduled.gates import validate_gates

    gates = validate_gates(gates)
    if _wants_history(gates) and not history:
        raise ConfigError("a gate compares with the previous run, but no history is configured "
                          "(history: DIR in the config, or --history DIR)", path="history")
    return gates


def _wants_history(gates: list) -> bool:
    return any(g["kind"] != "max_mae" and g["baseline"] == "history" for g in gates)


def finish_run(result: EvaluationResult, *, gates: list, history: str | None = None, definition: dict,
               storage_options: dict | None = None) -> list | None:
    """Check quality gates (as returned by :func:`prepare_gates`) and append the run to the metrics
    history, in that order: :func:`check_run` then :func:`record_run`.

    Returns the gate checks (``None`` without gates).  A caller that writes outputs (JSON, a report,
    losses) calls the two steps itself, with every output written in between, so that a run
    whose outputs fail is never in the history.
    """
    checks = check_run(result, gates=gates, history=history, definition=definition, storage_options=storage_options)
    record_run(result, checks, history=history, definition=definition, storage_options=storage_options)
    return checks


def check_run(result: EvaluationResult, *, gates: list, history: str | None, definition: dict,
              storage_options: dict | None = None, tests: dict | None = None) -> list | None:
    """Check the quality gates (against the history's previous passing run where asked; ``tests``:
    the report's paired tests, for ``significant`` gates); sets ``result.gates``; returns the checks
    (``None`` without gates).  Appends nothing."""
    if not gates:
        return None
    from l1stream.outputs import history as metrics_history  # pyarrow: only for a run that checks gates
    from l1stream.scheduled.gates import check_gates

    digest = metrics_history.config_hash(definition)
    values: dict = {}
    if history and _wants_history(gates):
        values = metrics_history.previous_values(history, digest, storage_options)
    return check_gates(result, gates, history_values=values, tests=tests)


def record_run(result: EvaluationResult, checks: list | None, *, history: str | None, definition: dict,
               storage_options: dict | None = None) -> None:
    """Append the run to the metrics history (if one is configured): the last step of a run, after
    every output was written.  The run is recorded whether or not its gates passed
    (``gates_passed`` says which)."""
    if not history:
        return
    from l1stream.outputs import history as metrics_history  # pyarrow: only for a run that keeps a history
    from l1stream.scheduled.gates import failed

    passed = None if checks is None else not failed(checks)
    rows = metrics_history.records(result, run_id=metrics_history.new_run_id(),
                                   config=metrics_history.config_hash(definition), gates_passed=passed)
    metrics_history.append(history, rows, storage_options)


def definition_of(config: dict) -> dict:
    """The parts of a config that define the metric (what the history's config_hash covers)."""
    keys = ("sources", "columns", "by", "filters", "nan_policy", "on_bad_file")
    return {k: config[k] for k in keys}
