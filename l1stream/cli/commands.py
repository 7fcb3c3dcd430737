"""The ``l1stream`` command: a thin layer over the public API.

Results go to stdout (a table, or one JSON object with ``--json``); logs,
progress and error messages go to stderr.  Exit codes are listed in
:mod:`l1stream.errors` and the README.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading

from l1stream.cli.parser import build_parser
from l1stream.cli.spelling import respell
from l1stream.errors import (
    EXIT_GATE,
    EXIT_OK,
    EXIT_SKIPPED,
    L1StreamError,
    SkippedFilesError,
    UsageError,
    describe_gate,
)


def main(argv=None) -> int:
    """Entry point; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    want_json = "--json" in argv
    interface = "config" if argv[:1] == ["run"] else "cli"  # the spelling of options in messages
    previous = _stop_on_sigterm()
    try:
        _explain_q_number(argv)
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise UsageError(f"no command given; choose one of: {', '.join(_COMMANDS)} (see 'l1stream -h')")
        if getattr(args, "scheduler_file", None):
            if args.scheduler:
                raise UsageError("give either --scheduler or --scheduler-file, not both")
            from l1stream.engine.schedulers import scheduler_from_file

            args.scheduler = scheduler_from_file(args.scheduler_file)
        if getattr(args, "mlflow_experiment", "") is None and (args.mlflow_tracking_uri or args.mlflow_run_name):
            raise UsageError("--mlflow-tracking-uri and --mlflow-run-name need --mlflow-experiment NAME")
        if getattr(args, "indent", None) is not None and (not args.json or args.indent < 0):
            raise UsageError(f"--indent {args.indent} formats --json output: give --json and 0 or more spaces")
        _configure_logging(args, interface)
        if args.command in _READS_DATA and not args.quiet:
            _note_missing_c_parts()
        return _COMMANDS[args.command](args)
    except L1StreamError as exc:
        return _fail(exc, want_json, interface)
    except Terminated:
        print("l1stream: terminated (SIGTERM); outputs left as they were", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("l1stream: interrupted; outputs left as they were", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (| head): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:  # a bug: say so, keep the traceback for --verbose / L1STREAM_DEBUG
        if os.environ.get("L1STREAM_DEBUG") or "-v" in argv or "--verbose" in argv:
            import traceback

            traceback.print_exc()
        error = L1StreamError(f"internal error: {type(exc).__name__}: {exc} (please report this; set "
                              f"L1STREAM_DEBUG=1 for a traceback)")
        error.kind = "internal_error"
        return _fail(error, want_json, interface)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that every output is unwound the same way."""


def _stop_on_sigterm():
    """Turn SIGTERM into :class:`Terminated` (main thread only); returns the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise Terminated()

    return signal.signal(signal.SIGTERM, handler)


def _fail(exc: L1StreamError, want_json: bool, interface: str) -> int:
    message = respell(exc.message, interface)
    print(f"l1stream: error: {message}", file=sys.stderr)
    if want_json:
        print(json.dumps({"error": {**exc.to_dict(), "message": message}}))
    return exc.exit_code


class _Respelled(logging.Filter):
    """Warnings in the spelling of the interface (see :mod:`l1stream.cli.spelling`)."""

    def __init__(self, interface: str) -> None:
        super().__init__()
        self.interface = interface

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = respell(record.getMessage(), self.interface), None
        return True


def _configure_logging(args, interface: str) -> None:
    level = logging.INFO if getattr(args, "verbose", False) else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format="l1stream: %(levelname)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _Respelled) for f in handler.filters):
            handler.addFilter(_Respelled(interface))


def _progress(args) -> bool:
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _key_values(items) -> dict:
    """KEY=VALUE strings to a dict (values parsed as JSON when they are; dotted keys nest)."""
    options: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"expected KEY=VALUE; got {item!r}")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        target = options
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = parsed
    return options


def _cmd_mae(args) -> int:
    from l1stream.engine.api import evaluate
    from l1stream.scheduled.runner import prepare_gates

    gates = prepare_gates(_gates(args), args.history)
    storage = _key_values(args.storage_option) or None
    _check_outputs(args, storage, {"--output": args.output})
    result = evaluate(args.sources, **_evaluation_options(args, storage), progress=_progress(args),
                      cluster=_cluster(args))
    record = _check(result, args, gates, storage)
    return _report(result, args, allow_skipped=args.allow_skipped, storage_options=storage, record=record)


def _check_outputs(args, storage, outputs: dict, directories: tuple = ()) -> None:
    """Refuse, before any work, outputs (and the store and history) inside a source, and outputs
    that cannot be written.  ``directories``: the options whose output replaces a whole directory."""
    from l1stream.sources.discovery import check_outputs_outside_sources
    from l1stream.storage import check_writable

    outputs = {**outputs, "--store": getattr(args, "store", None), "--history": getattr(args, "history", None)}
    check_outputs_outside_sources(args.sources, outputs, storage, directories=directories)
    check_writable(outputs, storage)


def _evaluation_options(args, storage: dict | None) -> dict:
    """The options of ``evaluate`` that ``mae`` and ``report`` take from the same arguments."""
    return {"actual": args.actual, "prediction": args.prediction, "weight": args.weight, "by": args.by or None,
            "filters": args.filters or None, "nan_policy": args.nan_policy, "on_bad_file": args.on_bad_file,
            "scheduler": args.scheduler, "num_workers": args.workers, "storage_options": storage,
            "store": args.store, "full": args.full, "baseline_prediction": args.baseline_prediction,
            "format": args.format, "table_version": args.table_version}


def _check(result, args, gates: list, storage, tests: dict | None = None):
    """Check the gates (``mae`` and ``report``); return what appends the run to the history, to be
    called once every output is written."""
    from l1stream.scheduled.runner import check_run, record_run

    definition = {"sources": args.sources, "columns": [args.actual, args.prediction, args.weight,
                                                       args.baseline_prediction],
                  "by": args.by, "filters": args.filters, "nan_policy": args.nan_policy}
    checks = check_run(result, gates=gates, history=args.history, definition=definition, storage_options=storage,
                       tests=tests)
    return lambda: record_run(result, checks, history=args.history, definition=definition, storage_options=storage)


def _cmd_report(args) -> int:
    from l1stream.report.job import ReportJob
    from l1stream.scheduled.runner import prepare_gates

    gates = prepare_gates(_gates(args), args.history)
    storage = _key_values(args.storage_option) or None
    _check_outputs(args, storage, {"--output": args.output, "--html": args.html})
    bins = None
    if args.bins:
        try:
            bins = [float(b) for b in args.bins.split(",")]
        except ValueError:
            raise UsageError(f"--bins expects comma-separated numbers, like 0,1000,5000; got {args.bins!r}") from None
    job = ReportJob(args.sources, **_evaluation_options(args, storage), quantiles=tuple(args.qs or (0.9, 0.99)),
                    bins=bins, time_key=None if args.time_key.lower() == "none" else args.time_key,
                    confidence=args.confidence, title=args.title)
    result = job.evaluate(_progress(args))
    significant = any(g.get("significant") for g in gates)
    record = None if significant else _check(result, args, gates, storage)
    report = job.profile(result, history=args.history)
    if significant:  # checked with the report's paired tests
        record = _check(result, args, gates, storage, tests=report.tests())
    report.write_html(args.html, storage)
    if not args.quiet:
        print(f"l1stream: wrote {args.html}", file=sys.stderr)
    from l1stream.storage import is_local_path

    return _report(result, args, allow_skipped=args.allow_skipped, storage_options=storage,
                   document=report.to_dict(), record=record, artifacts=[args.html] if is_local_path(args.html) else [])


def _gates(args) -> list:
    common = {"slices": args.gate_slices, "min_slice_size": args.min_slice_size}
    significant = getattr(args, "gate_significant", False)
    if significant and not any(getattr(args, k) is not None for k in ("max_increase", "max_increase_percent")):
        raise UsageError("--gate-significant qualifies --max-increase or --max-increase-percent; give one")
    gates = []
    if args.max_mae is not None:
        gates.append({"max_mae": args.max_mae, **common})
    for kind in ("max_increase", "max_increase_percent"):
        if getattr(args, kind) is not None:
            gates.append({kind: getattr(args, kind), "baseline": args.gate_baseline, **common,
                          **({"significant": True} if significant else {})})
    return gates


def _cluster(args):
    if args.cluster is None:
        if args.cluster_option:
            raise UsageError("--cluster-option needs --cluster KIND")
        return None
    return {"kind": args.cluster, "workers": args.cluster_workers,
            "options": _key_values(args.cluster_option)}


_READS_DATA = ("mae", "losses", "run", "demo", "quantiles", "report")


def _note_missing_c_parts() -> None:
    """One line on stderr when the C parts did not build: the answers are the same, the run slower."""
    from l1stream.cli.parser import _native_parts

    parts = _native_parts()
    if parts.startswith("C parts off") or parts == "C page decoder and kernel":
        return  # turned off on purpose (L1STREAM_NATIVE=0, big-endian), or all there
    print(f"l1stream: note: {parts.replace('C ', 'only the C ', 1) if parts.startswith('C ') else parts}; "
          "the answers are the same, about 2x slower. Install a C compiler (gcc) and reinstall l1stream to "
          "build them ('l1stream --version' says which load)", file=sys.stderr)


def _mlflow_settings(args) -> dict:
    return {"experiment": args.mlflow_experiment, "tracking_uri": args.mlflow_tracking_uri,
            "run_name": args.mlflow_run_name}


def _json(document, args) -> str:
    """``--json`` output: one line, unless ``--indent N`` (checked in :func:`main`)."""
    return json.dumps(document, indent=args.indent, allow_nan=False)


def _report(result, args, *, allow_skipped: bool, storage_options: dict | None = None,
            document: dict | None = None, record=None, written: bool = False, artifacts=()) -> int:
    """Write the JSON output and log to MLflow (unless already ``written``), then ``record`` the run
    in the history (last: a run whose outputs failed is not recorded), then print the result and
    choose the exit code."""
    from l1stream.storage import write_text

    document = document or result.to_dict(file_reports=args.per_file)
    if args.output and not written:
        write_text(args.output, json.dumps(document, indent=2, allow_nan=False) + "\n", storage_options)
    if args.mlflow_experiment and not written:
        from l1stream.outputs.mlflow_run import log_run
        from l1stream.scheduled.gates import failed

        run_id = log_run(result, _mlflow_settings(args), document=document, artifacts=artifacts,
                         gates_passed=None if result.gates is None else not failed(result.gates))
        if not args.quiet:
            print(f"l1stream: logged MLflow run {run_id} in experiment {args.mlflow_experiment!r}", file=sys.stderr)
    if record is not None:
        record()
    print(_json(document, args) if args.json else result.summary())
    from l1stream.scheduled.gates import failed

    bad = failed(result.gates)
    if bad:
        for check in bad:
            print(f"l1stream: gate failed: {describe_gate(check)}", file=sys.stderr)
        return EXIT_GATE
    if result.skipped and not allow_skipped:
        error = SkippedFilesError(f"{len(result.skipped)} file(s) were skipped as unreadable (listed above); "
                                  f"allow that with allow_skipped=True")
        interface = "config" if args.command == "run" else "cli"
        print(f"l1stream: error: {respell(error.message, interface)}", file=sys.stderr)
        return EXIT_SKIPPED
    return EXIT_OK


def _cmd_losses(args) -> int:
    from l1stream.outputs.losses import write_losses

    storage = _key_values(args.storage_option) or None
    _check_outputs(args, storage, {"--output": args.output}, directories=("--output",))
    summary = write_losses(args.sources, args.output, actual=args.actual, prediction=args.prediction,
                           by=args.by or None, keep=tuple(args.keep), filters=args.filters or None,
                           nan_policy=args.nan_policy, scheduler=args.scheduler, num_workers=args.workers,
                           storage_options=storage, cluster=_cluster(args))
    print(_json(summary, args) if args.json else f"wrote {summary['rows']:,} losses from {summary['files']:,} "
                                                   f"file(s) to {summary['output']}")
    return EXIT_OK


def _cmd_run(args) -> int:
    from l1stream.scheduled.job import load, run_job

    config = load(args.config, args.overrides)
    if args.mlflow_experiment:  # the flags win over the config's output.mlflow
        config["output"]["mlflow"] = _mlflow_settings(args)
    outcome = run_job(config, progress=_progress(args), full=args.full, extra_json=args.output,
                      per_file=args.per_file)
    if not args.quiet:  # every output is in place by now
        for path in outcome.written:
            print(f"l1stream: wrote {path}", file=sys.stderr)
        if outcome.mlflow_run:
            print(f"l1stream: logged MLflow run {outcome.mlflow_run} in experiment "
                  f"{config['output']['mlflow']['experiment']!r}", file=sys.stderr)
    return _report(outcome.result, args, allow_skipped=config["allow_skipped"], written=True)


def _cmd_demo(args) -> int:
    from l1stream.engine.api import evaluate
    from l1stream.sources.demo import DEFAULT_ROWS, write_demo_dataset

    rows = args.rows if args.rows is not None else DEFAULT_ROWS
    if rows < 1:
        raise UsageError(f"--rows must be a positive integer; got {rows}")
    if not args.quiet:
        print(f"l1stream: demo data ({rows:,} rows, hive-partitioned by date and model) in {args.directory}",
              file=sys.stderr)
    write_demo_dataset(args.directory, rows=rows)
    result = evaluate(args.directory, by=["model"], progress=_progress(args))
    return _report(result, args, allow_skipped=False)


def _cmd_quantiles(args) -> int:
    from l1stream.engine.api import error_quantiles

    result = error_quantiles(args.sources, q=tuple(args.qs or (0.9, 0.99)), actual=args.actual,
                             prediction=args.prediction, filters=args.filters or None, nan_policy=args.nan_policy,
                             scheduler=args.scheduler, num_workers=args.workers,
                             storage_options=_key_values(args.storage_option) or None)
    doc = result.to_dict()
    if args.json:
        print(_json(doc, args))
    else:
        print(f"median     {doc['median']!r}")
        for q, value in doc["quantiles"].items():
            print(f"q{q:<9} {value!r}")
        print(f"rows used  {doc['count']:,}" + (f" ({doc['left_out']:,} left out)" if doc["left_out"] else ""))
    return EXIT_OK


def _explain_q_number(argv: list) -> None:
    """``l1stream quantiles logs/ -q 0.9``: ``-q`` is ``--quiet`` (as in every command), and the number
    would arrive as a source or an unrecognized argument; say what to type instead."""
    if argv[:1] != ["quantiles"]:
        return
    for flag, value in zip(argv, argv[1:]):
        if flag == "-q" and _is_number(value) and not os.path.exists(value):
            raise UsageError(f"{value!r} is not a source: give quantiles with --quantile {value} "
                             f"(-q is --quiet in every command)")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _cmd_history(args) -> int:
    from l1stream.outputs.history import format_table, read

    rows = read(args.path, _key_values(args.storage_option) or None, must_exist=True)
    if args.overall:
        rows = [r for r in rows if r["slice"] == ""]
    if args.last:
        runs = list(dict.fromkeys(r["run_id"] for r in rows))[-args.last:]
        rows = [r for r in rows if r["run_id"] in runs]
    if args.json:
        def clean(value):
            return None if isinstance(value, float) and value != value else value

        print(_json([{k: (v.isoformat() if k == "timestamp" else clean(v)) for k, v in r.items()} for r in rows],
                    args))
    else:
        print(format_table(rows))
    return EXIT_OK


COMPLETIONS = {"bash": "l1stream.bash", "zsh": "_l1stream"}  # in l1stream/cli/completions/


def _cmd_completion(args) -> int:
    from importlib.resources import files

    sys.stdout.write((files("l1stream.cli") / "completions" / COMPLETIONS[args.shell]).read_text(encoding="utf-8"))
    return EXIT_OK


def _cmd_schema(args) -> int:
    from l1stream.cli.schemas import SCHEMAS

    print(json.dumps(SCHEMAS[args.document](), indent=2))
    return EXIT_OK


_COMMANDS = {"mae": _cmd_mae, "losses": _cmd_losses, "run": _cmd_run, "demo": _cmd_demo, "history": _cmd_history,
             "quantiles": _cmd_quantiles, "report": _cmd_report, "completion": _cmd_completion,
             "schema": _cmd_schema}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
