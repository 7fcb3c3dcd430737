"""List only the partitions a job's filters can keep: ``date>=2026-11-01`` lists ``date=2026-11-*``.

On object storage a listing returns 1,000 keys per request, one page after another: a source of
100,000 files is 100 sequential round trips before the first byte of data.  When the job filters
on a partition key, the source is listed one directory level at a time instead (each level's
directories all at once), as long as the levels are ``key=value`` directories: a level whose key
is filtered keeps only the values the filter can match, and below the last filtered key each
kept directory is listed recursively, all of them in flight together.

The pruning is exactly the planner's (:meth:`~l1stream.sources.filters.BoundFilters.keeps_partition`):
a value is typed as its key is typed over the whole source (``int``, ``date``, ``string``, see
:mod:`l1stream.sources.hive`), from every value of that level, kept or not.  Where that could
differ from the type the full listing gives, the full listing is made instead:
- a key whose type could depend on which directories left out hold data files (the full listing
  types a key from its files: ``region=1``, ``region=2`` and an empty ``region=eu`` make ``int``);
- a key found twice on one file's path (``date=a/date=b/``: the deeper one counts).
A filter that does not parse as that type, and filters that are an OR of alternatives or a pyarrow
expression, prune nothing here (they still apply to the files and rows).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from l1stream.errors import UsageError
from l1stream.sources.filters import Filter, _coerce_many, _matches, _partition_value
from l1stream.sources.hive import hive_pair, is_ignored_name, typed_value, value_type
from l1stream.storage import all_at_once

MAX_LEVELS = 6
"""Directory levels listed one at a time, at most; below them, one recursive listing each."""


@dataclass
class Pruned:
    """What a pruned listing left out: per key, the raw values and the directories not listed."""

    values: dict = field(default_factory=dict)  # key -> set of raw values left out
    directories: list = field(default_factory=list)
    types: dict = field(default_factory=dict)  # key -> the type the pruning used

    def add(self, other: Pruned) -> None:
        """Take in what another source's listing left out (a key pruned as two types is marked so)."""
        self.directories += other.directories
        for key, kind in other.types.items():
            self.types[key] = kind if self.types.get(key, kind) == kind else "differs between sources"
        for key, values in other.values.items():
            self.values.setdefault(key, set()).update(values)


def prunable_filters(filters) -> dict:
    """``{key: [Filter, ...]}`` of the plain comparisons among ``filters`` (ANDed together)."""
    out: dict = {}
    for f in filters or ():
        if isinstance(f, Filter):
            out.setdefault(f.column, []).append(f)
    return out


def pruned_listing(fs, root: str, filters: dict) -> tuple[dict, Pruned] | None:
    """``(listing, pruned)``: the ``{path: info}`` of every file under ``root`` in a directory
    ``filters`` can keep, as ``fs.find(root, detail=True)`` gives them, and what was left out.
    None when nothing was pruned, or when the pruning could differ from the planner's (see the
    module): the caller then lists ``root`` whole."""
    pruned = Pruned()
    listing: dict = {}
    level = [root.rstrip("/")]
    depth = 0
    while level:
        depth += 1
        entries = all_at_once(fs, [fs._ls(directory, detail=True) for directory in level])
        directories = []
        for found in entries:
            for info in found:
                name = info["name"].rstrip("/")
                if info.get("type") == "directory":
                    directories.append(name)
                elif name not in level:
                    listing[name] = info
        kept = _keep(directories, filters, pruned)
        remaining = set(filters) - set(pruned.types)
        if remaining and depth < MAX_LEVELS and any("=" in posixpath.basename(d) for d in kept):
            level = kept
            continue
        deeper = all_at_once(fs, [fs._find(d, detail=True, withdirs=False) for d in kept]) if kept else []
        for found in deeper:
            listing.update(found)
        break
    if not pruned.directories or not _types_hold(listing, root, pruned):
        return None
    return listing, pruned


def _keep(directories: list, filters: dict, pruned: Pruned) -> list:
    """The directories of one level that the filters may keep (all of them where no filter applies)."""
    values: dict = {}
    for directory in directories:
        name = posixpath.basename(directory)
        if "=" in name and not is_ignored_name(name):
            key, value = hive_pair(name)
            values.setdefault(key, []).append((directory, value))
    kept = [d for d in directories if "=" not in posixpath.basename(d) or is_ignored_name(posixpath.basename(d))]
    for key, found in values.items():
        if key not in filters or key in pruned.types:
            kept += [d for d, _ in found]
            continue
        kind = value_type(v for _, v in found)
        try:
            wanted = [(f.op, _coerce_many(f, lambda v, f=f, kind=kind: _partition_value(v, kind, f)))
                      for f in filters[key]]
        except UsageError:  # not a value of this key's type: the binding reports it; prune nothing here
            kept += [d for d, _ in found]
            continue
        pruned.types[key] = kind
        for directory, value in found:
            typed = typed_value(value, kind)
            if all(_matches(typed, op, value_wanted) for op, value_wanted in wanted):
                kept.append(directory)
            else:
                pruned.values.setdefault(key, set()).add(value)
                pruned.directories.append(directory)
    return sorted(kept)


def _types_hold(listing: dict, root: str, pruned: Pruned) -> bool:
    """Whether each pruned key has the type the pruning used whichever directories left out hold
    data files (the full listing types a key from its files' values only), and no file's path holds
    a pruned key twice.

    That is so when the files found have values of the key and either all of the level's values
    are integers (or all dates), or the files' values alone make it a string key."""
    seen: dict = {}
    prefix = root.rstrip("/") + "/"
    for path in listing:
        relative = path[len(prefix):] if path.startswith(prefix) else posixpath.basename(path)
        keys = [hive_pair(part) for part in relative.split("/")[:-1] if "=" in part]
        names = [k for k, _ in keys]
        for key, value in keys:
            if key in pruned.types:
                if names.count(key) > 1:
                    return False
                seen.setdefault(key, set()).add(value)
    return all(seen.get(key) and (kind != "string" or value_type(seen[key]) == "string")
               for key, kind in pruned.types.items())
