"""One ``manifest.json`` per output folder: what is there, in which frame, and what it means.

Every folder the engine writes (a stage-1 run, a density run, an analysis, an eval-density
output) carries a manifest with at least::

    {"schema": "cryostar-<kind>/<N>", "kind": "<kind>", "engine_version": "...",
     "status": "running" | "stopped" | "finished",
     "files": [every file of the folder, relative, "/"-separated, sorted; manifest.json included],
     "box_px": D, "apix_A": s,
     "frame": {"shift_A": [x, y, z], "source": "map" | "as-is", "map": path | null,
               "map_origin_A": [x, y, z] | null},
     "checkpoints": [relative paths, newest last],
     "series": {name: [relative files, in order]},     # e.g. "kmeans", "pca_1"
     "cxc": {name: relative .cxc file}}

plus kind-specific keys.  ``files`` is the folder's listing when the manifest is written,
except temporary files of atomic writes (``.*.tmp``), lock files and sub-folders that carry
their own manifest (``RUN/analysis/``).  Readers (the Scipion plugin) take file names from here
and never build one.  The manifest is written atomically and last.
"""
from __future__ import annotations

from pathlib import Path

from .. import __version__
from ..geometry.frames import Frame
from .checkpoint import list_checkpoints
from .rundir import read_json, write_json

__all__ = ["MANIFEST", "SCHEMAS", "list_files", "write_manifest", "read_manifest"]

MANIFEST = "manifest.json"
SCHEMAS = {"atom": "cryostar-atom/1", "density": "cryostar-density/1",
           "analysis": "cryostar-analysis/2", "density-eval": "cryostar-density-eval/1",
           "atom-eval": "cryostar-atom-eval/1", "check": "cryostar-check/1",
           "validation": "cryostar-validation/1"}


def _skipped(path: Path) -> bool:
    name = path.name
    return name.endswith((".tmp", ".lock")) or name == "index.lock"


def list_files(folder) -> list[str]:
    """Relative ``/``-separated names of the files under ``folder`` (see the module docstring)."""
    folder = Path(folder)
    out = []

    def walk(d: Path):
        for p in sorted(d.iterdir()):
            if p.is_dir():
                if not (p / MANIFEST).is_file():
                    walk(p)
            elif p.is_file() and not _skipped(p):
                out.append(p.relative_to(folder).as_posix())
    walk(folder)
    return sorted(set(out) | {MANIFEST})


def write_manifest(folder, kind: str, status: str, box_px: int | None, apix_A: float | None,
                   frame: Frame | None = None, series: dict | None = None,
                   cxc: dict | None = None, **extra) -> dict:
    """Write ``folder/manifest.json`` for an output of ``kind`` (a key of :data:`SCHEMAS`) and
    return it.  ``extra`` keys are added as they are (JSON-able values)."""
    folder = Path(folder)
    manifest = {
        "schema": SCHEMAS[kind], "kind": kind, "engine_version": __version__, "status": status,
        "box_px": None if box_px is None else int(box_px),
        "apix_A": None if apix_A is None else float(apix_A),
        "frame": (frame or Frame()).to_json(),
        "checkpoints": [p.relative_to(folder).as_posix() for p in list_checkpoints(folder)],
        "series": {k: list(v) for k, v in (series or {}).items()},
        "cxc": dict(cxc or {}),
        **extra,
    }
    manifest["files"] = list_files(folder)
    write_json(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder) -> dict | None:
    """The manifest of ``folder``, or None when absent or unreadable."""
    try:
        return read_json(Path(folder) / MANIFEST)
    except (OSError, ValueError):
        return None
