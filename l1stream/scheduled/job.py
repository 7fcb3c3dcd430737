"""One scheduled run, start to finish: what ``l1stream run`` does, callable from Python.

:func:`run_job` loads (or takes) a config, checks every output location, evaluates, checks the
quality gates, writes the loss dataset, the report and the JSON result, and appends the run to the
metrics history last (a run whose outputs failed is never recorded).  :func:`run` is the public
entry point for orchestrators (Airflow, Prefect, Dagster): the same steps, then a raised
:class:`~l1stream.errors.GateFailedError` when a gate failed, so the task fails as the CLI's exit
code 4 would make it.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from l1stream.errors import ConfigError, GateFailedError, SkippedFilesError, UsageError

if TYPE_CHECKING:
    from l1stream.engine.result import EvaluationResult


@dataclass
class RunOutcome:
    """What a scheduled run produced: the result (``result.gates`` holds the gate checks), the
    failed gates, and every output it wrote."""

    result: EvaluationResult
    config: dict
    failed_gates: list = field(default_factory=list)
    written: list = field(default_factory=list)  # paths (or URLs) of the outputs, in the order written
    mlflow_run: str | None = None  # the MLflow run id, when output.mlflow is set


def load(config, overrides=()) -> dict:
    """A validated config from a file path, or from a mapping shaped like a config file.

    ``overrides`` are ``"key.path=value"`` strings (``--set``) or a mapping of key paths to values.
    """
    from l1stream.scheduled.config import apply_override, load_config, validate_config

    if isinstance(overrides, dict):
        overrides = [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    elif isinstance(overrides, str):
        overrides = [overrides]
    if isinstance(config, (str, os.PathLike)):
        return load_config(os.fspath(config), overrides)
    if not isinstance(config, dict):
        raise UsageError(f"a run takes a config file path or a dict shaped like one; got {type(config).__name__}")
    raw = copy.deepcopy(config)
    for item in overrides:
        apply_override(raw, item)
    return validate_config(raw)


def run_job(config: dict, *, progress: bool = False, full: bool = False, extra_json: str | None = None,
            per_file: bool = False) -> RunOutcome:
    """Every step of a scheduled run of a validated ``config`` (see the module doc)."""
    from l1stream.scheduled.gates import failed
    from l1stream.scheduled.runner import (
        check_config_outputs,
        check_run,
        config_report_job,
        definition_of,
        prepare_gates,
        profile_config_report,
        record_run,
        run_config,
        write_config_losses,
        write_config_report,
    )
    from l1stream.storage import write_text

    gates = prepare_gates(config["gates"], config["history"])
    significant = any(g["significant"] for g in gates)
    if significant and not config["output"]["report"]:
        raise ConfigError("a significant gate is checked with the report's paired test of the two models: "
                          "set output.report", path="gates")
    check_config_outputs(config)
    report_job = config_report_job(config)
    storage = config["storage_options"] or None
    result = run_config(config, progress=progress, full=full)
    definition = definition_of(config)
    report = profile_config_report(report_job, result, config)
    checks = check_run(result, gates=gates, history=config["history"], definition=definition,
                       storage_options=storage, tests=report.tests() if significant else None)
    losses = write_config_losses(config)
    written = [losses["output"]] if losses else []
    report_path = write_config_report(report, config)
    written += [report_path] if report_path else []
    text = json.dumps(result.to_dict(file_reports=per_file), indent=2, allow_nan=False)
    for path in dict.fromkeys(filter(None, (config["output"]["json"], extra_json))):
        write_text(path, text + "\n", storage)
        written.append(path)
    mlflow_run = None
    if config["output"].get("mlflow"):
        from l1stream.outputs.mlflow_run import log_run
        from l1stream.storage import is_local_path

        artifacts = [report_path] if report_path and is_local_path(report_path) else []
        mlflow_run = log_run(result, config["output"]["mlflow"], document=result.to_dict(file_reports=per_file),
                             artifacts=artifacts, gates_passed=None if checks is None else not failed(checks))
    record_run(result, checks, history=config["history"], definition=definition, storage_options=storage)
    return RunOutcome(result, config, failed(checks or []), written, mlflow_run)


def run(config, overrides=(), *, progress: bool = False, full: bool = False):
    """Run a scheduled job exactly as ``l1stream run CONFIG --set ...`` does, from Python.

    Parameters
    ----------
    config : str, os.PathLike or dict
        A YAML/TOML config file, or a dict with the same keys.
    overrides : list of "key.path=value" strings, or dict
        Applied before validation, like ``--set`` (``{"nan_policy": "omit"}``).
    progress, full : bool
        A progress bar on stderr; ignore the state store and read everything.

    Returns
    -------
    EvaluationResult
        With ``.gates`` (the gate checks, or None) and the outputs written.

    Raises
    ------
    GateFailedError
        A quality gate failed; ``.checks`` holds the failed gates and ``.result`` the result.  The
        outputs were written and the run recorded first, as the CLI does before exiting with 4.
    SkippedFilesError
        Files were skipped under ``on_bad_file: skip`` without ``allow_skipped: true``.

    Examples
    --------
    >>> import l1stream
    >>> def task():  # an Airflow/Prefect/Dagster task body; a failed gate fails the task
    ...     return l1stream.run("configs/demo.yaml", {"nan_policy": "omit"}).mae
    """
    outcome = run_job(load(config, overrides), progress=progress, full=full)
    result = outcome.result
    if outcome.failed_gates:
        raise GateFailedError(outcome.failed_gates, result)
    if result.skipped and not outcome.config["allow_skipped"]:
        raise SkippedFilesError(f"{len(result.skipped)} file(s) were skipped as unreadable: "
                                f"{', '.join(result.skipped)}; allow that with allow_skipped: true")
    return result
