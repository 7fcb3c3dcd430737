"""Regenerate the checked-in files that are derived from the command line's own definition.

    python -m l1stream.cli.generate          # rewrite them
    python -m l1stream.cli.generate --check  # exit 1 when one is stale (tests/test_generated.py)

The shell completions (``l1stream/cli/completions/``, by ``shtab`` from the argparse parser: a
development tool, not a dependency, as the files ship) and the JSON Schemas (``docs/schema/``, from
:mod:`l1stream.cli.schemas`).
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def generated() -> dict:
    """Path (relative to the repository) -> the text it must hold."""
    import shtab

    from l1stream.cli.commands import COMPLETIONS
    from l1stream.cli.parser import build_parser
    from l1stream.cli.schemas import SCHEMAS

    out = {f"l1stream/cli/completions/{name}": shtab.complete(build_parser(), shell=shell)
           for shell, name in COMPLETIONS.items()}
    for name, build in SCHEMAS.items():
        out[f"docs/schema/{name}.schema.json"] = json.dumps(build(), indent=2) + "\n"
    return out


def main(argv=None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    stale = []
    for relative, text in generated().items():
        path = os.path.join(REPO, relative)
        try:
            with open(path, encoding="utf-8") as handle:
                current = handle.read()
        except FileNotFoundError:
            current = None
        if current == text:
            continue
        stale.append(relative)
        if not check:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
    for relative in stale:
        print(f"{'stale' if check else 'wrote'}: {relative}", file=sys.stderr)
    if check and stale:
        print("run: python -m l1stream.cli.generate", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
