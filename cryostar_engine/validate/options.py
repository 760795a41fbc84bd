"""Options shared by the commands: numeric counts and ``--out`` targets.

(The kind of a ``--run`` folder is checked from its config.json by ``atom.config`` and
``density.config``: ``read_run_config`` refuses a run of the other stage in one line.)"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError

__all__ = ["check_positive", "check_output_file", "check_output_folder"]


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
