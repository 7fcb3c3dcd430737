"""The ``l1stream`` command line: its arguments (one parser per command, each with an example).

:mod:`l1stream.cli` runs the commands; this module only describes them.
"""

from __future__ import annotations

import argparse

from l1stream.errors import UsageError

EXAMPLES = {
    "mae": "l1stream mae logs/ --by model --filter 'date>=2026-11-10' --json",
    "report": "l1stream report logs/ --by model --html report.html --history results/history",
    "losses": "l1stream losses logs/ --output losses/ --keep listing_id",
    "run": "l1stream run configs/demo.yaml --set nan_policy=omit --json",
    "quantiles": "l1stream quantiles logs/ --quantile 0.9 --quantile 0.99 --filter model==v2 --json",
    "history": "l1stream history results/history --last 5 --json",
    "demo": "l1stream demo ./l1stream-demo --rows 1000000",
    "completion": "l1stream completion bash > ~/.local/share/bash-completion/completions/l1stream",
    "schema": "l1stream schema result > l1stream-result.schema.json",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage and exit 2; we want one error path
        raise UsageError(f"{message} (see '{self.prog} -h')")


def _native_parts() -> str:
    """Which C parts load, without importing numpy or pyarrow (the extensions need neither)."""
    import importlib
    import os
    import sys

    if sys.byteorder != "little" or os.environ.get("L1STREAM_NATIVE", "1") == "0":
        return "C parts off: L1STREAM_NATIVE=0" if sys.byteorder == "little" else "C parts off: big-endian"
    built = []
    for name, module in (("page decoder", "l1stream.parquet._pages"), ("kernel", "l1stream.exact._kernel")):
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        built.append(name)
    return "C " + " and ".join(built) if built else "no C parts: built without a C compiler"


def build_parser() -> argparse.ArgumentParser:
    from l1stream._version import __version__

    parser = _Parser(prog="l1stream", description="Exact, out-of-core mean absolute error over Parquet.",
                     epilog="Examples:\n  " + "\n  ".join(EXAMPLES.values()),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"l1stream {__version__} ({_native_parts()})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    logs = _Parser(add_help=False)  # -q and -v mean the same in every command
    logs.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings only")
    logs.add_argument("-v", "--verbose", action="store_true", help="log progress details on stderr")

    output = _Parser(add_help=False, parents=[logs])
    _json_flags(output, "print one JSON object on one line on stdout (errors too)")
    output.add_argument("--output", metavar="FILE", help="also write the JSON result to FILE (atomically)")
    output.add_argument("--per-file", action="store_true", help="include per-file row accounting in the JSON")
    output.add_argument("--mlflow-experiment", metavar="NAME",
                        help="also log the run to this MLflow experiment (pip install \"l1stream[mlflow]\")")
    output.add_argument("--mlflow-tracking-uri", metavar="URI",
                        help="MLflow tracking store (default: MLflow's own, MLFLOW_TRACKING_URI)")
    output.add_argument("--mlflow-run-name", metavar="NAME", help="name of the MLflow run")

    data = _Parser(add_help=False)
    data.add_argument("sources", nargs="+", metavar="SOURCE", help="Parquet files, directories, globs or URLs")
    data.add_argument("--actual", default="actual", metavar="COL", help="actual-value column (default: actual)")
    data.add_argument("--prediction", default="prediction", metavar="COL",
                      help="prediction column (default: prediction)")
    data.add_argument("--filter", action="append", default=[], metavar="EXPR", dest="filters",
                      help="keep rows where EXPR holds: 'date>=2026-11-10', 'model==v2', 'segment in a,b'")
    data.add_argument("--nan-policy", choices=["raise", "omit", "propagate"], default="raise",
                      help="null/NaN/inf rows: fail (default), leave out and count, or return NaN")
    data.add_argument("--scheduler", metavar="SPEC",
                      help="threads (default), processes, synchronous, or a scheduler address tcp://host:port")
    data.add_argument("--scheduler-file", metavar="FILE",
                      help="the JSON file 'dask scheduler --scheduler-file' writes (the SLURM script's)")
    data.add_argument("--workers", type=int, metavar="N", help="threads or processes for local schedulers")
    data.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                      help="fsspec option for URLs (repeatable; dotted keys nest: client_kwargs.region_name=x)")

    slicing = _Parser(add_help=False)
    slicing.add_argument("--by", action="append", default=[], metavar="COL", help="slice by this key (repeatable)")

    cluster = _Parser(add_help=False)
    cluster.add_argument("--cluster", choices=["local", "slurm", "kubernetes", "gateway"], metavar="KIND",
                         help="start a Dask cluster for this run: local, slurm, kubernetes or gateway")
    cluster.add_argument("--cluster-workers", type=int, default=1, metavar="N",
                         help="worker processes/jobs/pods to start with --cluster (default: 1)")
    cluster.add_argument("--cluster-option", action="append", default=[], metavar="KEY=VALUE",
                         help="option of the cluster class (repeatable): queue=normal, memory=8GiB, cores=4")

    mae = _command(commands, "mae", [data, slicing, cluster, output], "compute the exact MAE of a dataset")
    _add_evaluation_arguments(mae)
    report = _command(commands, "report", [data, slicing, output],
                      "write an HTML error report: MAE, histogram, slices with intervals, quantiles, L2, trends")
    report.add_argument("--html", default="l1stream-report.html", metavar="FILE",
                        help="where to write the report (local path or URL; default: l1stream-report.html)")
    report.add_argument("--quantile", type=float, action="append", dest="qs", metavar="Q",
                        help="exact quantile of |error| to show (repeatable; default 0.9 and 0.99)")
    report.add_argument("--bins", metavar="E1,E2,...", help="fixed histogram edges (besides the log-spaced one)")
    report.add_argument("--time-key", default="auto", metavar="KEY",
                        help="partition key or column to plot the MAE over (default: a date partition key; "
                             "'none' for no time chart)")
    report.add_argument("--confidence", type=float, default=0.95, metavar="C",
                        help="level of the per-slice intervals (default 0.95)")
    report.add_argument("--title", metavar="TEXT", help="the report's title")
    _add_evaluation_arguments(report)
    report.add_argument("--gate-significant", action="store_true",
                        help="with --max-increase[-percent] against --gate-baseline baseline_prediction: fail only "
                             "where the paired test finds the rise (p < 0.05, Holm-adjusted across slices)")

    losses = _command(commands, "losses", [data, slicing, cluster, logs],
                      "write the per-row L1 loss as a Parquet dataset")
    losses.add_argument("--output", required=True, metavar="DIR", help="output directory (replaced atomically)")
    losses.add_argument("--keep", action="append", default=[], metavar="COL", help="copy this column (repeatable)")
    _json_flags(losses, "print a JSON summary on one line")

    run = _command(commands, "run", [output], "run a job described by a config file")
    run.add_argument("config", metavar="CONFIG", help="YAML or TOML job config (see configs/)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                     help="override a config key: --set nan_policy=omit --set columns.actual=y")
    run.add_argument("--full", action="store_true", help="ignore the config's state store: read everything")

    quantiles = _command(commands, "quantiles", [data, logs],
                         "exact median and quantiles of |actual - prediction| (overall: select a slice with "
                         "--filter)")
    quantiles.add_argument("--quantile", type=float, action="append", dest="qs", metavar="Q",
                           help="a quantile in [0, 1] (repeatable; default 0.9 and 0.99; the median always)")
    _json_flags(quantiles, "print one JSON object on one line")

    history = _command(commands, "history", [], "list the metrics history of scheduled runs")
    history.add_argument("path", metavar="DIR", help="the history directory or URL")
    history.add_argument("--last", type=int, metavar="N", help="only the last N runs")
    history.add_argument("--overall", action="store_true", help="only the overall records (no slices)")
    _json_flags(history, "print a JSON list of records on one line")
    history.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE")

    demo = _command(commands, "demo", [output], "write a synthetic house-price log and evaluate it")
    demo.add_argument("directory", nargs="?", default="l1stream-demo", metavar="DIR",
                      help="where to write the demo data (default: ./l1stream-demo)")
    demo.add_argument("--rows", type=int, default=None, metavar="N", help="rows to generate (default: 4,000,000)")

    completion = _command(commands, "completion", [], "print the shell completion script (bash or zsh)")
    completion.add_argument("shell", choices=["bash", "zsh"], help="bash: source it, or put it in "
                            "~/.local/share/bash-completion/completions/l1stream; zsh: save it as _l1stream "
                            "in a directory on $fpath")
    schema = _command(commands, "schema", [], "print a JSON Schema: of the --json result, or of the job config")
    schema.add_argument("document", choices=["result", "config"], help="result: what --json prints (mae, run, "
                        "demo); config: what 'l1stream run' reads")
    return parser


def _add_evaluation_arguments(parser) -> None:
    """Options shared by ``mae`` and ``report``: weights, bad files, store, baseline, gates, history."""
    parser.add_argument("--weight", metavar="COL", help="sample-weight column (weighted MAE)")
    parser.add_argument("--on-bad-file", choices=["raise", "skip"], default="raise",
                        help="unreadable files: fail (default) or skip and report")
    parser.add_argument("--allow-skipped", action="store_true", help="exit 0 even if files were skipped")
    parser.add_argument("--store", metavar="DIR",
                        help="state store (dir or URL): re-runs read only new or changed files")
    parser.add_argument("--format", choices=["auto", "parquet", "delta", "iceberg"], default="auto",
                        help="how to read the sources: auto (default) reads Delta and Iceberg tables as their "
                             "current snapshot; parquet reads every file as plain Parquet")
    parser.add_argument("--table-version", type=int, metavar="N",
                        help="the Delta version or Iceberg snapshot id to read (time travel)")
    parser.add_argument("--baseline-prediction", metavar="COL",
                        help="another model's predictions: both MAEs on the same rows and their exact difference")
    gates = parser.add_argument_group("quality gates (exit code 4 when one fails)")
    gates.add_argument("--max-mae", type=float, metavar="X", help="fail when the MAE is above X")
    gates.add_argument("--max-increase", type=float, metavar="X", help="fail when the MAE rose more than X")
    gates.add_argument("--max-increase-percent", type=float, metavar="P", help="fail when the MAE rose more than P%%")
    gates.add_argument("--gate-baseline", choices=["history", "baseline_prediction"], default="history",
                       help="what an increase is measured against (default: the previous passing run)")
    gates.add_argument("--gate-slices", action="store_true", help="apply the gates to every slice too")
    gates.add_argument("--min-slice-size", type=int, default=1, metavar="N", help="only slices with >= N rows")
    gates.add_argument("--history", metavar="DIR", help="metrics history (dir or URL): append this run")
    parser.add_argument("--full", action="store_true", help="ignore the state store: read everything (and refresh it)")


def _json_flags(parser, text: str) -> None:
    """``--json`` (one line: the last stdout line is what Airflow's BashOperator pushes to XCom) and
    ``--indent N`` (for people)."""
    parser.add_argument("--json", action="store_true", help=text)
    parser.add_argument("--indent", type=int, metavar="N", help="with --json: indent by N spaces, over many lines")


def _command(commands, name: str, parents: list, text: str):
    """A subcommand whose help ends with its example."""
    return commands.add_parser(name, parents=parents, help=text, description=text,
                               epilog=f"Example:\n  {EXAMPLES[name]}",
                               formatter_class=argparse.RawDescriptionHelpFormatter)
