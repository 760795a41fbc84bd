"""One mechanism for the settings of both training stages: metadata, validation, JSON.

Each stage's configuration is a frozen dataclass (:class:`~cryostar_engine.atom.AtomConfig`,
:class:`~cryostar_engine.density.DensityConfig`) whose fields are declared with
:func:`setting`.  The field's metadata says everything a user (or the Scipion plugin) needs to
know about it: the command-line flag, the help text, the unit, the choices, the allowed range,
whether it belongs to the essential settings, and how a ``None`` default is resolved.  From this
one source the engine

* builds the command line of ``train-atom`` and ``train-density``
  (:mod:`cryostar_engine.commands._dataclass_args`);
* range-checks every numeric setting and every choice (:func:`validate_settings`, called by
  each config's ``__post_init__``, i.e. before any file is read or folder made);
* publishes the settings as JSON (:func:`settings_json`, ``--settings-json``).

Fields declared with :func:`hook_for_tests` exist for the tests only (simulated kills, non-finite losses, broken
conventions): they are neither flags nor listed in the JSON.  Tests set them through the library
or, for a subprocess, through the environment variables of :data:`TEST_HOOKS_ENV`
(``CRYOSTAR_TEST_STOP_AFTER_STEPS``, ``CRYOSTAR_TEST_NAN_AT_STEP``).

A saved ``config.json`` carries ``{"schema_version": N, "kind": "atom" | "density", ...}``;
:func:`config_from_dict` refuses a config of the other stage in one line.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import MISSING, field, fields
from pathlib import Path

from .errors import InputError

__all__ = ["StageConfig", "setting", "hook_for_tests", "validate_settings", "settings_json",
           "user_fields", "flag_of", "range_text", "config_from_dict", "apply_test_hooks",
           "refuse_changes_on_resume",
           "TEST_HOOKS_ENV", "KIND_NAMES"]

# environment variable → the test-hook field it sets (the first that the config has)
TEST_HOOKS_ENV = {"CRYOSTAR_TEST_STOP_AFTER_STEPS": ("stop_after_steps", "debug_stop_after_steps"),
                  "CRYOSTAR_TEST_NAN_AT_STEP": ("debug_nan_at_step",)}
SETTINGS_SCHEMA = "cryostar-settings/1"
KIND_NAMES = {"atom": "stage-1 (atom generator)", "density": "stage-2 (density generator)"}
KIND_COMMANDS = {"atom": "train-atom", "density": "train-density"}
_UNITS = ("Å", "px")
# shared help texts of settings both stages have
Q0_DEFAULT_TEXT = "the star file's rlnAmplitudeContrast; 0.1 (as RELION) where it has none"


def setting(default=MISSING, help: str = "", *, unit: str | None = None, choices=None,
            min=None, max=None, min_inclusive: bool = True, max_inclusive: bool = True,
            essential: bool = False, default_text: str | None = None, flag: str | None = None,
            even: bool = False, required: bool = False, words=None):
    """A dataclass field with the metadata of a user setting.

    ``words`` are texts a number setting also takes (e.g. ``("auto",)`` for ``--low-pass``).
    ``min``/``max`` bound a number (or every element of an ``int_list``); ``None`` values of an
    optional setting are not range-checked (they mean "resolved later", see ``default_text``).
    ``flag`` overrides the default ``--field-name`` (``_A`` dropped, ``_`` → ``-``).
    ``required`` marks a setting without a usable default (an input file, the run folder).
    """
    if unit not in (None, *_UNITS):
        raise ValueError(f"unit must be one of {_UNITS} or None, got {unit!r}")
    meta = {"help": help, "unit": unit, "choices": tuple(choices) if choices else None,
            "min": min, "max": max, "min_inclusive": min_inclusive, "max_inclusive": max_inclusive,
            "essential": essential, "default_text": default_text, "flag": flag, "even": even,
            "required": required, "words": tuple(words) if words else None}
    if default is MISSING:
        return field(metadata=meta)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for a list-valued default")
    return field(default=default, metadata=meta)


def hook_for_tests(default=None, help: str = ""):
    """A field for the tests only: not a flag, not in ``--settings-json``, never range-checked
    beyond its own type."""
    return field(default=default, metadata={"help": help, "test_hook": True})


def user_fields(cls) -> list:
    """The fields of ``cls`` that are user settings (declared with :func:`setting`)."""
    return [f for f in fields(cls) if "help" in f.metadata and not f.metadata.get("test_hook")]


def flag_of(f) -> str:
    """The command-line flag of a setting field."""
    return f.metadata.get("flag") or "--" + re.sub(r"_A$", "", f.name).replace("_", "-")


# -- types --------------------------------------------------------------------------------------

def kind_of(f) -> str:
    """``"int"``, ``"float"``, ``"str"``, ``"bool"`` or ``"int_list"`` from the field's annotation."""
    text = str(f.type)
    for word, kind in (("tuple", "int_list"), ("bool", "bool"), ("float", "float"),
                       ("int", "int")):
        if re.search(rf"\b{word}\b", text):
            return kind
    return "str"


def _fmt(x) -> str:
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, float):
        return f"{x:g}"
    if isinstance(x, (tuple, list)):
        return " ".join(_fmt(v) for v in x)
    return str(x)


def _check_type(flag: str, kind: str, value) -> None:
    number = (int, float)
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, number) and not isinstance(value, bool),
          "bool": isinstance(value, bool),
          "str": isinstance(value, str),
          "int_list": isinstance(value, (tuple, list)) and len(value) > 0 and all(
              isinstance(v, int) and not isinstance(v, bool) for v in value)}[kind]
    if not ok:
        what = {"int": "an integer", "float": "a number", "bool": "true or false",
                "str": "a text", "int_list": "one or more integers"}[kind]
        raise InputError(f"{flag} must be {what}, got {value!r}")
    if kind == "float" and not math.isfinite(value):
        raise InputError(f"{flag} must be a finite number, got {_fmt(value)}")


# -- validation ---------------------------------------------------------------------------------

def range_text(meta) -> str:
    """``"lie in (0, 1]"``, ``"be ≥ 1"`` … for a setting's metadata; ``""`` without bounds."""
    lo, hi = meta.get("min"), meta.get("max")
    if lo is None and hi is None:
        return ""
    if lo is not None and hi is not None:
        return (f"lie in {'[' if meta['min_inclusive'] else '('}{_fmt(lo)}, {_fmt(hi)}"
                f"{']' if meta['max_inclusive'] else ')'}")
    if lo is not None:
        return f"be {'≥' if meta['min_inclusive'] else '>'} {_fmt(lo)}"
    return f"be {'≤' if meta['max_inclusive'] else '<'} {_fmt(hi)}"


def _in_range(meta, x) -> bool:
    lo, hi = meta["min"], meta["max"]
    if lo is not None and (x < lo or (x == lo and not meta["min_inclusive"])):
        return False
    return not (hi is not None and (x > hi or (x == hi and not meta["max_inclusive"])))


def check_setting(f, value, meta=None) -> None:
    """Raise :class:`InputError` (one line naming the flag) if ``value`` is not allowed for the
    setting field ``f``.  ``meta`` replaces ``f.metadata`` (used by the tests)."""
    meta = f.metadata if meta is None else meta
    if value is None:
        if f.default is None:
            return
        raise InputError(f"{flag_of(f)} needs a value")
    if isinstance(value, str) and value in (meta.get("words") or ()):
        return
    flag, kind = flag_of(f), kind_of(f)
    _check_type(flag, kind, value)
    choices = meta.get("choices")
    if choices and value not in choices and not _indexed_device(choices, value):
        raise InputError(f"{flag} '{value}': choose one of {', '.join(choices)}")
    if meta.get("min") is None and meta.get("max") is None:
        return
    values = value if kind == "int_list" else (value,)
    for x in values:
        if not _in_range(meta, x):
            each = " each" if kind == "int_list" else ""
            raise InputError(f"{flag} must {range_text(meta)}{each}, got {_fmt(value)}")
    if meta.get("even") and value % 2:
        raise InputError(f"{flag} must be an even number of pixels, got {value}")


def _indexed_device(choices, value) -> bool:
    """``cuda:N`` is a valid device wherever ``cuda`` is."""
    return "cuda" in choices and re.fullmatch(r"cuda:\d+", str(value)) is not None


def validate_settings(cfg, metadata: dict | None = None) -> None:
    """Check every user setting of the config dataclass ``cfg`` against its metadata.

    Raises :class:`InputError` with one line naming the flag, e.g. ``--zdim must be ≥ 1, got -2``
    or ``--en-keep-ratio must lie in (0, 1], got 1.5``.  ``metadata`` (name → metadata dict)
    replaces the declared metadata of some fields; the tests use it to show that a check can fail.
    """
    metadata = metadata or {}
    for f in user_fields(type(cfg)):
        check_setting(f, getattr(cfg, f.name), metadata.get(f.name))


# -- JSON ---------------------------------------------------------------------------------------

def _json_value(value):
    return list(value) if isinstance(value, tuple) else value


def setting_record(f) -> dict:
    """The JSON description of one setting (see ``CONTRACT``/README: ``--settings-json``)."""
    m = f.metadata
    required = m.get("required") or f.default is MISSING
    default = None if required else _json_value(f.default)
    default_text = "required" if required else m.get("default_text")
    return {"name": f.name, "flag": flag_of(f), "type": kind_of(f), "unit": m.get("unit"),
            "default": default, "default_text": default_text if default is None else None,
            "choices": list(m["choices"]) if m.get("choices") else None,
            "min": m.get("min"), "max": m.get("max"),
            "min_inclusive": bool(m.get("min_inclusive", True)),
            "max_inclusive": bool(m.get("max_inclusive", True)),
            "words": list(m["words"]) if m.get("words") else None,
            "essential": bool(m.get("essential")), "help": m.get("help", "")}


def settings_json(command: str, *classes) -> str:
    """The settings of ``command`` (the user fields of ``classes``, in order) as a JSON text."""
    from . import __version__

    records = [setting_record(f) for cls in classes for f in user_fields(cls)]
    return json.dumps({"schema": SETTINGS_SCHEMA, "command": command,
                       "engine_version": __version__, "settings": records},
                      indent=1, ensure_ascii=False)


# -- saved configs ------------------------------------------------------------------------------

class StageConfig:
    """Base of the frozen config dataclasses of both stages: validation when built, JSON with
    ``schema_version`` and ``kind``, and the reading of a saved config (the other stage's
    refused).  Subclasses set ``KIND`` and ``SCHEMA_VERSION`` (and optionally
    ``LEGACY_NAMES``, old key → field, and ``legacy_values(data, schema_version)``)."""

    KIND = ""
    SCHEMA_VERSION = 1

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise :class:`InputError` (one line naming the flag) on a value out of range."""
        validate_settings(self)

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON-able dict, with ``schema_version`` and ``kind`` (what ``config.json`` holds)."""
        return {"schema_version": self.SCHEMA_VERSION, "kind": self.KIND, **dataclasses.asdict(self)}

    def to_json(self) -> dict:
        """Same as :meth:`to_dict`."""
        return self.to_dict()

    @classmethod
    def from_dict(cls, data: dict, source: str = "config", hint: str | None = None):
        """Inverse of :meth:`to_dict`; see :func:`config_from_dict`."""
        return config_from_dict(cls, data, source, hint)


def infer_kind(data: dict) -> str | None:
    """``"atom"``/``"density"`` from a config dict's ``kind`` (or, in configs written before it
    existed, from stage-specific keys); ``None`` for a partial file of shared settings."""
    if "kind" in data:
        return data["kind"]
    if {"z_path", "batch_size", "hidden", "pe_dim"} & set(data):
        return "density"
    if {"model", "zdim", "low_pass_A", "encoder_hidden"} & set(data):
        return "atom"
    return None


def config_from_dict(cls, data: dict, source: str, hint: str | None = None):
    """Build the config dataclass ``cls`` (with ``KIND``, ``SCHEMA_VERSION`` and optionally
    ``LEGACY_NAMES``/``legacy_values``) from a saved or hand-written dict.

    Refused in one line: a config of the other stage (``hint`` says what to pass instead), a
    newer schema, unknown keys.  Older schemas are read (renamed keys are mapped).
    """
    data = dict(data)
    kind = infer_kind(data)
    if kind is not None and kind != cls.KIND:
        hint = hint or f"pass a {KIND_COMMANDS[cls.KIND]} run"
        raise InputError(f"{source} is a {KIND_NAMES.get(kind, repr(kind))} config; {hint}")
    data.pop("kind", None)
    version = data.pop("schema_version", cls.SCHEMA_VERSION)
    if not isinstance(version, int) or version > cls.SCHEMA_VERSION:
        raise InputError(f"{source}: config schema {version} is newer than this engine's "
                         f"{cls.SCHEMA_VERSION}; update cryostar-engine")
    for old, new in getattr(cls, "LEGACY_NAMES", {}).items():
        if old in data:
            data.setdefault(new, data.pop(old))
    if hasattr(cls, "legacy_values"):
        data = cls.legacy_values(data, version)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"{source}: unknown setting(s) {', '.join(unknown)} for "
                         f"{KIND_COMMANDS[cls.KIND]}")
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**data)
    except TypeError as err:        # a required field is missing
        raise InputError(f"{source}: {err}") from None


# settings that name files or the run itself: a resumed run may be given them anew (a copied
# run folder, a re-converted star file) without a check
RUN_LOCATIONS = ("particles", "passthrough", "model", "map", "datadir", "z_path", "out", "resume",
                 "overwrite")


def refuse_changes_on_resume(given: dict, saved, may_change, source: str) -> None:
    """On ``--resume`` the run's saved settings rule.  A setting given on the command line that
    differs from the saved one is refused in one line unless it is one of ``may_change`` (or of
    :data:`RUN_LOCATIONS`): it would otherwise be silently ignored."""
    free = set(may_change) | set(RUN_LOCATIONS)
    for f in user_fields(type(saved)):
        if f.name not in given or f.name in free or given[f.name] == getattr(saved, f.name):
            continue
        allowed = ", ".join(flag_of(g) for g in user_fields(type(saved)) if g.name in may_change)
        raise InputError(f"{flag_of(f)} {_fmt(given[f.name])} differs from the run being resumed "
                         f"({_fmt(getattr(saved, f.name))} in {source}); on --resume only "
                         f"{allowed} may change: start a new run to change {flag_of(f)}")


def apply_test_hooks(cfg):
    """``cfg`` with the test hooks set in the environment (:data:`TEST_HOOKS_ENV`: variable →
    field) applied: for tests that run the engine in a subprocess (``torchrun``, the Scipion
    plugin's jobs).  The commands call it once, when they build the config; not for users."""
    names = {f.name for f in fields(cfg) if f.metadata.get("test_hook")}
    changes = {}
    for variable, candidates in TEST_HOOKS_ENV.items():
        text = os.environ.get(variable)
        name = next((n for n in candidates if n in names), None)
        if not text or name is None:
            continue
        try:
            changes[name] = int(text)
        except ValueError:
            raise InputError(f"{variable} must be a step number, got {text!r}") from None
    return cfg.replace(**changes) if changes else cfg


def read_settings_file(path, what: str = "the config file") -> dict:
    """The JSON object of settings in ``path`` (a ``--config`` file or a run's config.json);
    one-line :class:`InputError` when it cannot be read or is not one object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read {what} ({err})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: {what} holds one JSON object of settings")
    return data


def read_saved_config(cls, run_dir, hint: str):
    """The config a ``KIND_COMMANDS`` run saved in ``run_dir/config.json``, as ``cls``; a run of
    the other stage (or no run) is refused in one line ending with ``hint``."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise InputError(f"{run_dir}: not a {KIND_COMMANDS[cls.KIND]} run (no config.json)")
    return config_from_dict(cls, read_settings_file(path, "the run's config"), str(path),
                            hint=hint)
