"""Messages in the spelling of the interface the user is in.

The library words its advice for Python callers (``pass on_bad_file='skip'``); a user of the command
line types flags (``--on-bad-file skip``) and a user of a config file writes keys
(``on_bad_file: skip``).  :func:`respell` rewrites the option names in a message for the CLI or a
config file, so each message names the option once, as that user would type it.  Only the option
names below are rewritten, and only outside quotes, so a column that happens to be called
``nan_policy`` is left alone.

>>> respell("pass on_bad_file='skip' to leave it out", "cli")
'pass --on-bad-file skip to leave it out'
>>> respell("pass on_bad_file='skip' to leave it out", "config")
'pass on_bad_file: skip to leave it out'
>>> respell("num_workers must be a positive integer or None; got 0", "cli")
'--workers must be a positive integer; got 0'
>>> respell("pass allow_skipped=True to accept that", "cli")
'pass --allow-skipped to accept that'
>>> respell("column 'nan_policy' has type string", "cli")
"column 'nan_policy' has type string"
"""

from __future__ import annotations

import re

#: Python keyword -> (CLI flag, config key).  ``None``: the interface has no such option.
OPTIONS = {
    "on_bad_file": ("--on-bad-file", "on_bad_file"),
    "nan_policy": ("--nan-policy", "nan_policy"),
    "num_workers": ("--workers", "num_workers"),
    "allow_skipped": ("--allow-skipped", "allow_skipped"),
    "storage_options": ("--storage-option", "storage_options"),
    "table_version": ("--table-version", "sources[].version"),
    "baseline_prediction": ("--baseline-prediction", "columns.baseline_prediction"),
    "time_key": ("--time-key", "report.time_key"),
    "min_slice_size": ("--min-slice-size", "gates[].min_slice_size"),
    "chunk_rows": (None, "chunk_rows"),
    "task_bytes": (None, "task_bytes"),
    "format": ("--format", "sources[].format"),
    "weight": ("--weight", "columns.weight"),
    "scheduler": ("--scheduler", "scheduler"),
}
#: names that are ordinary English words: rewritten only in the ``name=value`` form
_WORDS = {"format", "weight", "scheduler"}

_VALUE = r"""(?:'([^']*)'|"([^"]*)"|([A-Za-z0-9_.+-]+))"""
_ASSIGNED = re.compile(r"(?<![\w'\"-])(" + "|".join(OPTIONS) + r")=" + _VALUE)
_BARE = re.compile(r"(?<![\w'\"=.-])(" + "|".join(sorted(set(OPTIONS) - _WORDS)) + r")(?![\w'\"=])")
_OR_NONE = re.compile(r" or None(?=[;,.)]| *$)")


def respell(message: str, interface: str) -> str:
    """``message`` with its Python option names in the spelling of ``interface``: ``"python"``
    (unchanged), ``"cli"`` or ``"config"``."""
    if interface == "python":
        return message
    column = 0 if interface == "cli" else 1

    def assigned(match: re.Match) -> str:
        name = match.group(1)
        value = next((g for g in match.groups()[1:] if g is not None), "")
        spelled = OPTIONS[name][column]
        if spelled is None:
            return match.group(0)
        if interface == "cli":
            if value in ("True", "False"):
                return spelled if value == "True" else f"no {spelled}"
            return f"{spelled} {value}"
        return f"{spelled}: {value.lower() if value in ('True', 'False', 'None') else value}"

    def bare(match: re.Match) -> str:
        spelled = OPTIONS[match.group(1)][column]
        return spelled if spelled is not None else match.group(0)

    text = _ASSIGNED.sub(assigned, message)
    rewritten = _BARE.sub(bare, text)
    if interface == "cli" and rewritten != message:
        rewritten = _OR_NONE.sub("", rewritten)  # a flag cannot be given as None
    return rewritten
