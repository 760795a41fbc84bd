"""Run folders: refuse to overwrite another run by accident; record what a run is."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import InputError
from ..io.atomic import write_text_atomic

__all__ = ["prepare_run_dir", "write_json", "read_json"]

MARKER = "run.json"


def prepare_run_dir(out, kind: str, resume: bool = False, overwrite: bool = False) -> Path:
    """Create or reuse the output folder of a ``kind`` run (e.g. ``"atom"``, ``"density"``).

    * new or empty folder → created;
    * folder of an earlier run → needs ``--resume`` (continue it) or ``--overwrite`` (start over,
      deleting its contents); a run of another kind is never resumed;
    * a non-empty folder that holds no run → refused, to protect the user's files.
    """
    out = Path(out)
    marker = out / MARKER
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose another --out")
    if marker.is_file():
        previous = read_json(marker).get("kind")
        if resume:
            if previous != kind:
                raise InputError(f"{out}: holds a '{previous}' run, cannot resume it as '{kind}'")
            return out
        if not overwrite:
            raise InputError(f"{out}: already holds a {previous} run; pass --resume to continue it "
                             "or --overwrite to start again")
        shutil.rmtree(out)
    elif out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{out}: folder is not empty and holds no run; choose an empty --out "
                             "or pass --overwrite")
        shutil.rmtree(out)
    elif resume:
        raise InputError(f"{out}: there is no run to resume here; drop --resume to start one")
    out.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"kind": kind})
    return out


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())
