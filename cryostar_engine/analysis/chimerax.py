"""ChimeraX command scripts (``.cxc``) that play decoded models as a movie over the consensus map.

The models are written in the frame of the input model and map (the user frame, see
:mod:`cryostar_engine.geometry.frames`), so the map opens at its own header origin and overlays
them with no move.  Each script:

* opens the map (absolute path), if any, as model #1, shown as a transparent surface;
* opens the multi-model PDB (a name relative to the script: ChimeraX runs a ``.cxc`` from its
  own folder, so the folder can be moved) with ``coordsets true``, so its models become frames
  of one trajectory (model #2, or #1 without a map), played forwards and back with
  ``coordset … loop … bounce true``.

Only commands that also run in ``chimerax --nogui`` are used; the GUI-only slider
(``coordset slider``) is offered as a comment for the user to type.
"""
from __future__ import annotations

from pathlib import Path

from ..io.atomic import write_text_atomic

__all__ = ["trajectory_script", "write_trajectory_cxc", "quote"]


def quote(path) -> str:
    """A path as one ChimeraX argument (double quotes when it holds a space or a quote)."""
    text = str(path)
    return f'"{text}"' if any(c in text for c in ' "\'') else text


def trajectory_script(pdb_name: str, n_models: int, title: str, map_path=None,
                      pause_frames: int = 10, loops: int = 5) -> str:
    """Text of a ``.cxc`` that opens ``pdb_name`` (relative to the script) as a trajectory of
    ``n_models`` frames, over ``map_path`` (opened at its own header origin) when given."""
    lines = [f"# {title}", f"# {n_models} models, played as frames of one trajectory.",
             "# Open with: chimerax this_file.cxc   (or `open this_file.cxc` inside ChimeraX;",
             "# it also runs with chimerax --nogui).  Models and map are in the frame of the input",
             "# model and map: the map opens at its own header origin."]
    model = "#1"
    if map_path is not None:
        lines += [f"open {quote(Path(map_path).resolve())}",
                  "volume #1 style surface transparency 0.65 color silver"]
        model = "#2"
    lines += [f"open {quote(pdb_name)} coordsets true",
              f"show {model} atoms",
              f"style {model} stick",
              f"cartoon {model}",
              f"color {model} bypolymer",
              "view",
              f"coordset {model} 1,{n_models} pauseFrames {pause_frames} loop {loops} bounce true",
              f"# In the ChimeraX window, a slider over the frames: coordset slider {model}"]
    return "\n".join(lines) + "\n"


def write_trajectory_cxc(path, pdb_name: str, n_models: int, title: str, map_path=None) -> Path:
    """Write :func:`trajectory_script` to ``path`` atomically; return ``path``."""
    write_text_atomic(path, trajectory_script(pdb_name, n_models, title, map_path))
    return Path(path)
