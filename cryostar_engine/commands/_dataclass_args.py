"""Expose the fields of a config dataclass as command-line flags (``field_name`` → ``--field-name``)."""
from __future__ import annotations

import argparse
import typing
from dataclasses import MISSING, fields


def _type_of(f):
    hint = f.type if not isinstance(f.type, str) else f.type
    text = str(hint)
    if "bool" in text:
        return bool
    if "tuple" in text:
        return tuple
    if "int" in text and "float" not in text:
        return int
    if "float" in text:
        return float
    return str


def add_dataclass_args(parser: argparse.ArgumentParser, cls, essential, renames=None) -> None:
    """Add one flag per field; fields not in ``essential`` go to an "advanced" group.
    Defaults are left as ``None`` so that only flags given on the command line override."""
    renames = renames or {}
    advanced = parser.add_argument_group("advanced settings (defaults shown)")
    for f in fields(cls):
        group = parser if f.name in essential else advanced
        flag = "--" + renames.get(f.name, f.name.replace("_A", "").replace("_", "-"))
        kind = _type_of(f)
        default = f.default if f.default is not MISSING else None
        help_text = f.metadata.get("help", "")
        if "default:" not in help_text:          # a help that explains its own default keeps it
            help_text += f" (default: {default})"
        if kind is bool:
            group.add_argument(flag, dest=f.name, action="store_true", default=None, help=help_text)
        elif kind is tuple:
            group.add_argument(flag, dest=f.name, type=int, nargs="+", default=None, help=help_text)
        else:
            group.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text)


def dataclass_from_args(cls, args, base: dict | None = None):
    """Build ``cls`` from a base dict (e.g. a config file) updated by the flags that were given."""
    values = dict(base or {})
    for f in fields(cls):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**values)
