"""Options shared by the commands: numeric ranges, ``--out`` targets, the kind of a run folder."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError

__all__ = ["check_positive", "check_output_file", "check_output_folder", "run_kind",
           "require_run_kind"]

RUN_COMMANDS = {"atom": "train-atom", "density": "train-density"}


def check_positive(flag: str, value, minimum=1) -> None:
    """Refuse ``value < minimum`` (for counts: ``--k 0``) in one line naming ``flag``."""
    if value is not None and not value >= minimum:
        raise InputError(f"{flag} must be ≥ {minimum}, got {value}")


def check_output_file(out, flag: str = "--out") -> Path:
    """An output FILE path: not an existing folder, and its folder must exist or be creatable."""
    out = Path(out)
    if out.is_dir():
        raise InputError(f"{out}: is a folder; {flag} names the output file (e.g. {out}/out.pdb)")
    parent = next((p for p in [out.parent, *out.parent.parents] if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise InputError(f"{out}: {parent} is a file, not a folder; choose another {flag}")
    return out


def check_output_folder(out, flag: str = "--out") -> Path:
    """An output FOLDER path: refused when it is an existing file (before any work is done)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose another {flag}")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise InputError(f"{out}: {parent} is a file, not a folder; choose another {flag}")
    return out


def run_kind(run_dir) -> str | None:
    """The ``kind`` recorded in ``RUN/run.json`` (``"atom"``, ``"density"``, …), None if absent."""
    marker = Path(run_dir) / "run.json"
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text()).get("kind")
    except (ValueError, OSError, AttributeError):
        return None


def require_run_kind(run_dir, kind: str, command: str) -> Path:
    """Refuse a ``--run`` folder that is missing or holds a run of another kind, in one line."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: run folder not found; give the --out folder of a "
                         f"{RUN_COMMANDS.get(kind, kind)} run")
    found = run_kind(run_dir)
    if found is not None and found != kind:
        hint = f"; use {found and {'atom': 'eval-atom', 'density': 'eval-density'}.get(found, '')}"
        raise InputError(f"{run_dir}: is a {RUN_COMMANDS.get(found, found)} ({found}) run, but "
                         f"{command} needs a {RUN_COMMANDS.get(kind, kind)} run"
                         + (hint if found in ("atom", "density") else ""))
    return run_dir
