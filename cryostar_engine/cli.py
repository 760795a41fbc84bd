"""The ``cryostar-engine`` command line: a thin registry over the library.

Each sub-command is a module in :mod:`cryostar_engine.commands` with ``add_args(parser)`` and
``main(args)``; its docstring is the ``--help`` text.  Expected problems (:class:`InputError`)
print one line, ``cryostar-engine: error: …``, and exit with status 2, without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import InputError

COMMANDS = ["check-inputs", "inspect-model", "train-atom", "eval-atom", "analyze", "export-subset",
            "train-density", "eval-density", "validate", "doctor"]


def _module(name: str):
    name = {"validate": "validate_runs"}.get(name, name)
    return importlib.import_module(f"cryostar_engine.commands.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="cryostar-engine", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cryostar-engine {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        mod = _module(name)
        doc = (mod.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else name, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_args(p)
        p.set_defaults(_main=mod.main)
    return parser


def main(argv=None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        result = args._main(args)
    except InputError as err:
        print(f"cryostar-engine: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cryostar-engine: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
