"""ChimeraX command scripts (``.cxc``) that play decoded models as a movie over the consensus map.

Each script opens (absolute paths, so it runs from any folder):

* the consensus map, if given, as model #1, shown as a transparent surface.  ChimeraX places
  a map by its header origin; our models are box-centred (the engine's frame: voxel ``D//2`` at
  0 Å), so the map must carry origin ``-(D//2)·apix``.  :func:`check_map_origin` tests that;
  when it does not hold the script re-centres the map with ``volume #1 originIndex c,c,c``
  (``c = D//2``) and the caller is warned;
* the multi-model PDB with ``coordsets true``, so its models become frames of one trajectory
  (model #2, or #1 without a map), played forwards and back with ``coordset … loop … bounce``
  and with a slider (``coordset slider``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import read_map
from ..io.atomic import write_text_atomic

__all__ = ["MapCheck", "check_map_origin", "trajectory_script", "write_trajectory_cxc"]


@dataclass(frozen=True)
class MapCheck:
    """Where a map lies compared with the engine's box-centred frame.

    Attributes
    ----------
    path : absolute path of the map.
    box : side D in voxels.
    voxel_size_A : Å per voxel.
    origin_A : ``(3,)`` header origin (x, y, z) in Å.
    expected_origin_A : ``-(D//2)·voxel_size_A``.
    centred : whether the header origin equals the expected one (to 1 % of a voxel).
    """

    path: Path
    box: int
    voxel_size_A: float
    origin_A: np.ndarray
    expected_origin_A: float
    centred: bool

    @property
    def warning(self) -> str | None:
        if self.centred:
            return None
        o = ", ".join(f"{v:g}" for v in self.origin_A)
        return (f"{self.path}: header origin ({o}) Å is not -(D//2)·apix = "
                f"{self.expected_origin_A:g} Å, so ChimeraX would not overlay it on the "
                f"box-centred models; the .cxc scripts re-centre it (volume originIndex "
                f"{self.box // 2}); write the map with that origin to fix it for good")


def check_map_origin(map_path) -> MapCheck:
    """Read a map header and compare its origin with ``-(D//2)·apix`` on every axis."""
    m = read_map(map_path)
    box = int(m.data.shape[0])
    expected = -(box // 2) * m.voxel_size_A
    centred = bool(np.all(np.abs(np.asarray(m.origin_A) - expected) <= 0.01 * m.voxel_size_A))
    return MapCheck(path=Path(map_path).resolve(), box=box, voxel_size_A=m.voxel_size_A,
                    origin_A=np.asarray(m.origin_A, float), expected_origin_A=expected,
                    centred=centred)


def _quote(path: Path) -> str:
    return f'"{Path(path).resolve()}"'


def trajectory_script(pdb_path, n_models: int, title: str, map_check: MapCheck | None = None,
                      pause_frames: int = 10, loops: int = 5) -> str:
    """Text of a ``.cxc`` that opens ``pdb_path`` as a trajectory of ``n_models`` frames."""
    lines = [f"# {title}", f"# {n_models} models, played as frames of one trajectory.",
             "# Open with: chimerax this_file.cxc   (or `open this_file.cxc` inside ChimeraX)"]
    model = "#1"
    if map_check is not None:
        lines += [f"open {_quote(map_check.path)}"]
        if not map_check.centred:
            c = map_check.box // 2
            lines += ["# the map header origin is not -(D//2)*apix: put voxel D//2 at 0 A, "
                      "like the models",
                      f"volume #1 originIndex {c},{c},{c}"]
        lines += ["volume #1 style surface transparency 0.65 color silver"]
        model = "#2"
    lines += [f"open {_quote(pdb_path)} coordsets true",
              f"show {model} atoms",
              f"style {model} stick",
              f"cartoon {model}",
              f"color {model} bypolymer",
              "view",
              f"coordset {model} 1,{n_models} pauseFrames {pause_frames} loop {loops} bounce true",
              f"coordset slider {model}"]
    return "\n".join(lines) + "\n"


def write_trajectory_cxc(path, pdb_path, n_models: int, title: str,
                         map_check: MapCheck | None = None) -> Path:
    """Write :func:`trajectory_script` to ``path`` atomically; return ``path``."""
    write_text_atomic(path, trajectory_script(pdb_path, n_models, title, map_check))
    return Path(path)
