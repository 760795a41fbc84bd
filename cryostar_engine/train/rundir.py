"""Run folders: refuse to overwrite another run by accident; record what a run is; leave
nothing behind when a command fails (:func:`discard_on_failure`)."""
from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

from ..errors import InputError
from ..io.atomic import write_text_atomic
from .guard import TrainingDiverged

__all__ = ["prepare_run_dir", "write_json", "read_json", "discard_on_failure"]

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


@contextlib.contextmanager
def discard_on_failure(out, keep: bool = False):
    """Run a command's block; when it fails with an :class:`InputError` (or the training
    diverges, reported as an :class:`InputError`), remove the output ``out`` it created.

    Removed: ``out`` when it did not exist (or was an empty folder) before the block, and a run
    folder whose ``run.json`` the block itself wrote (``--overwrite``).  Never removed with
    ``keep`` (``--resume``: the folder holds earlier work), nor a folder or file that the block
    did not create.  Wrap everything from the first check to the end of training.
    """
    out = Path(out)
    fresh = not out.exists() or (out.is_dir() and not any(out.iterdir()))
    started = time.time()

    def discard() -> bool:
        marker = out / MARKER
        ours = marker.is_file() and marker.stat().st_mtime >= started - 1
        if keep or not out.exists() or not (fresh or ours):
            return False
        if out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        else:
            out.unlink(missing_ok=True)
        return True

    try:
        yield out
    except TrainingDiverged as err:
        removed = discard()
        raise InputError(f"{err}" + (f"; {out} was removed" if removed else
                                     f"; {out} keeps the last good checkpoint")) from None
    except InputError:
        discard()
        raise
