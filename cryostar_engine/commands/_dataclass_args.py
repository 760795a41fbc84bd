"""The command line of a config dataclass, generated from its settings' metadata.

Each user setting (:func:`cryostar_engine.settings.setting`) becomes one flag: essential ones
in the main help, the rest under "advanced settings".  Flags default to ``None`` so that only
the flags given on the command line override a ``--config`` file or a resumed run's config.
Choices and ranges are not given to argparse: :func:`~cryostar_engine.settings.validate_settings`
checks them when the config is built, with one message format for flags and config files.
Test hooks are not flags.
"""
from __future__ import annotations

import argparse

from ..settings import flag_of, kind_of, range_text, settings_json, user_fields

__all__ = ["add_settings_args", "dataclass_from_args", "given_settings",
           "print_settings_json"]


def _help(f) -> str:
    m = f.metadata
    text = m.get("help", "")
    limits = [m["unit"]] if m.get("unit") else []
    if range_text(m):
        limits.append(range_text(m).removeprefix("be ").replace("lie in ", "in "))
    if limits:
        text += f" ({'; '.join(limits)})"
    if m.get("choices"):
        text += f"; one of {', '.join(m['choices'])}"
    if m.get("words"):
        text += f"; or {', '.join(m['words'])}"
    if m.get("required") or kind_of(f) == "bool":
        return text
    default = m.get("default_text") if f.default is None else f.default
    if isinstance(default, tuple):
        default = " ".join(str(v) for v in default)
    return f"{text} (default: {default})".replace("%", "%%")


def _number_or_word(number, words):
    """An argparse type taking a number or one of ``words`` (e.g. ``--low-pass auto``)."""
    def parse(text: str):
        return text if text in words else number(text)
    parse.__name__ = f"{number.__name__} or {' or '.join(words)}"    # argparse's error text
    return parse


def add_settings_args(parser: argparse.ArgumentParser, *classes) -> None:
    """Add ``--settings-json`` and one flag per user setting of ``classes``."""
    parser.add_argument("--settings-json", action="store_true",
                        help="print every setting of this command (name, flag, type, unit, "
                             "default, choices, range, help) as JSON and exit")
    advanced = parser.add_argument_group("advanced settings (defaults shown)")
    for cls in classes:
        for f in user_fields(cls):
            group = parser if f.metadata.get("essential") else advanced
            kind, flag = kind_of(f), flag_of(f)
            if kind == "bool":
                group.add_argument(flag, dest=f.name, action="store_true", default=None, help=_help(f))
                continue
            typ = {"int": int, "float": float, "int_list": int}.get(kind, str)
            if f.metadata.get("words"):
                typ = _number_or_word(typ, f.metadata["words"])
            extra = {"nargs": "+"} if kind == "int_list" else {}
            if "on" in (f.metadata.get("choices") or ()):       # a bare "--compile" means on
                extra = {"nargs": "?", "const": "on"}
            group.add_argument(flag, dest=f.name, type=typ, default=None, help=_help(f),
                               metavar=flag.lstrip("-").upper().replace("-", "_"), **extra)


def given_settings(cls, args) -> dict:
    """The settings of ``cls`` given on the command line (lists as tuples)."""
    values = {}
    for f in user_fields(cls):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = tuple(v) if isinstance(v, list) else v
    return values


def dataclass_from_args(cls, args, base: dict | None = None):
    """Build ``cls`` from a base dict (e.g. a config file) updated by the flags that were given;
    the config validates itself (one-line :class:`~cryostar_engine.errors.InputError`)."""
    return cls(**{**(base or {}), **given_settings(cls, args)})


def print_settings_json(command: str, *classes) -> int:
    """Print the settings JSON of ``command`` to stdout; the exit status (0)."""
    print(settings_json(command, *classes))
    return 0
