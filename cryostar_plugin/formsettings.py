"""The training forms are built from the engine's published settings; they pass only what the
user changed.

Source of truth
---------------
``cryostar-engine train-atom --settings-json`` (and ``train-density``) prints every setting
with its flag, type, unit, default, choices, range and help.  The plugin ships that output for
the engine version it supports in ``engine_settings/<command>.json`` (refresh with
``cryostar-engine train-atom --settings-json > cryostar_plugin/engine_settings/train-atom.json``);
``tests/test_forms.py`` runs the engine and fails when the copy differs.  Scipion builds forms
when it loads a project, so the forms read the copy rather than start the engine.

What this module does
---------------------
* :func:`addSettingParam` adds a form parameter for one engine setting: its default, choices
  and help are the engine's (help: the engine's text, flags replaced by form labels, plus an
  optional note).  A setting whose engine default is resolved at run time (``null`` plus a
  ``default_text``, e.g. the training box or the low-pass) becomes an optional field, empty by
  default, whose help says how the engine resolves it.
* :func:`settingArgs` turns the form into engine flags, keeping only the fields whose value
  differs from the default: a form left untouched runs what ``cryostar-engine`` runs by default.
* :func:`settingErrors` range-checks the values set, with the engine's bounds, in the form's
  words (the engine checks again, in its own).
* :func:`toLabels` rewrites engine flags in a text (a report line, a help text) as form labels.
"""
import json
import os
import re

import pyworkflow.protocol.params as params

__all__ = ["FormSetting", "engineSettings", "addSettingParam", "settingArgs", "settingErrors",
           "toLabels", "ATOM", "DENSITY"]

ATOM = "train-atom"
DENSITY = "train-density"
_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine_settings")
_CACHE = {}


def engineSettings(command):
    """The engine's settings of ``command`` (the shipped copy): name → JSON record."""
    if command not in _CACHE:
        with open(os.path.join(_DIR, f"{command}.json"), encoding="utf-8") as f:
            data = json.load(f)
        _CACHE[command] = {s["name"]: s for s in data["settings"]}
    return _CACHE[command]


class FormSetting:
    """One form field bound to one engine setting.

    Parameters
    ----------
    param : form parameter name (camelCase; stored in project databases: never rename).
    setting : the engine's setting name (``"zdim"``, ``"low_pass_A"``).
    label : what the form shows.
    note : text appended to the engine's help (Scipion-specific advice), or "".
    """

    def __init__(self, param, setting, label, note=""):
        self.param, self.setting, self.label, self.note = param, setting, label, note

    def record(self, command):
        return engineSettings(command)[self.setting]


def _fmt(value):
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return " ".join(_fmt(v) for v in value)
    return str(value)


#: Labels of the input fields, for flags that name inputs rather than settings.
INPUT_LABELS = {"--map": "Consensus map (optional)", "--model": "Reference model",
                "--particles": "Input particles", "--resume": "Continue"}


def toLabels(text, specs, command):
    """``text`` with every engine flag of ``specs`` (and of the inputs) written as its form
    label in quotes."""
    flags = [(s.record(command)["flag"], s.label) for s in specs] + list(INPUT_LABELS.items())
    flags.sort(key=lambda fl: -len(fl[0]))          # --lr-schedule before --lr
    for flag, label in flags:
        text = re.sub(re.escape(flag) + r"(?![\w-])", f"'{label}'", text)
    return text


def formHelp(spec, command, specs):
    """The form help of ``spec``: the engine's help (flags → labels), how an empty field is
    resolved, the allowed range, the note."""
    rec = spec.record(command)
    text = toLabels(rec["help"], specs, command)
    text = text[:1].upper() + text[1:]
    parts = [text if text.endswith(".") else text + "."]
    if rec["default"] is None and rec["default_text"]:
        how = toLabels(rec["default_text"], specs, command)
        how = how[len("auto: "):] if how.startswith("auto: ") else how
        parts.append(f"Empty (automatic): {how}.")
    if rec["unit"]:
        parts.append(f"Unit: {rec['unit']}.")
    if rec["type"] in ("int", "float") and (rec["min"] is not None or rec["max"] is not None):
        parts.append(f"Allowed: {_rangeText(rec)}.")
    if spec.note:
        parts.append(spec.note)
    return " ".join(parts)


def addSettingParam(container, spec, command, specs, **kwargs):
    """Add the form parameter of ``spec`` to ``container`` (a form, section or group).

    The parameter class follows the setting's type: bool → BooleanParam, a setting with
    choices → EnumParam (default: the index of the engine's default), int → IntParam,
    float → FloatParam.  ``kwargs`` (condition, expertLevel, …) are passed on.
    """
    rec = spec.record(command)
    help = formHelp(spec, command, specs)
    default = rec["default"]
    if rec["type"] == "bool":
        cls, extra = params.BooleanParam, {"default": bool(default)}
    elif rec["choices"]:
        cls = params.EnumParam
        extra = {"choices": list(rec["choices"]), "default": rec["choices"].index(default),
                 "display": params.EnumParam.DISPLAY_HLIST}
    elif rec["type"] in ("int", "float"):
        cls = params.IntParam if rec["type"] == "int" else params.FloatParam
        extra = {"default": default}
        if default is None:
            extra["allowsNull"] = True
    else:
        raise ValueError(f"{rec['name']}: a {rec['type']} setting has no form field here")
    container.addParam(spec.param, cls, label=spec.label, help=help, **extra, **kwargs)


def _formValue(prot, spec, command):
    """The engine value of the form field (None when empty)."""
    rec = spec.record(command)
    value = getattr(prot, spec.param).get()
    if value is None:
        return None
    if rec["choices"] and rec["type"] != "bool":
        return rec["choices"][int(value)]
    if rec["type"] == "bool":
        return bool(value)
    return int(value) if rec["type"] == "int" else float(value)


def settingArgs(prot, specs, command):
    """Engine flags for the fields of ``specs`` that differ from the engine's default.

    Returns
    -------
    list of str : e.g. ``["--zdim", "4", "--invert-contrast"]``; empty for an untouched form.
    """
    args = []
    for spec in specs:
        rec = spec.record(command)
        value = _formValue(prot, spec, command)
        if value is None or value == rec["default"]:
            continue
        if rec["type"] == "bool":
            if value:
                args.append(rec["flag"])
            continue
        args += [rec["flag"], _fmt(value)]
    return args


def _inRange(rec, x):
    lo, hi = rec["min"], rec["max"]
    if lo is not None and (x < lo or (x == lo and not rec["min_inclusive"])):
        return False
    return not (hi is not None and (x > hi or (x == hi and not rec["max_inclusive"])))


def _rangeText(rec):
    """``"at least 1"``, ``"more than 0"``, ``"between 0 and 1 (0 excluded)"``."""
    lo, hi = rec["min"], rec["max"]
    if lo is not None and hi is not None:
        excluded = [_fmt(v) for v, inc in ((lo, rec["min_inclusive"]), (hi, rec["max_inclusive"]))
                    if not inc]
        return (f"between {_fmt(lo)} and {_fmt(hi)}"
                + (f" ({' and '.join(excluded)} excluded)" if excluded else ""))
    if lo is not None:
        return f"{'at least' if rec['min_inclusive'] else 'more than'} {_fmt(lo)}"
    return f"{'at most' if rec['max_inclusive'] else 'less than'} {_fmt(hi)}"


def settingErrors(prot, specs, command):
    """One message per field whose value lies outside the engine's range."""
    errors = []
    for spec in specs:
        rec = spec.record(command)
        value = _formValue(prot, spec, command)
        if value is None or rec["type"] not in ("int", "float"):
            continue
        if not _inRange(rec, value):
            errors.append(f"{spec.label} must be {_rangeText(rec)}; it is {_fmt(value)}.")
    return errors
