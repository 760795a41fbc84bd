"""Model–map validation: stage-1 models checked against stage-2 maps at the same latent points.

The density generator (stage 2) never saw the atomic model, so its maps can say whether a motion
of the decoded models (stage 1) is in the data or only in the prior.  Pieces, one concern each:

* :mod:`.runs` — load a matching pair of runs and the latent points (one-line errors first);
* :mod:`.fsc` — the soft mask around a model and the masked model–map FSC;
* :mod:`.localcc` — local correlation in a sphere around each bead;
* :mod:`.flags` — thresholds from the noise of the local CC and the map's resolution, and flags;
* :mod:`.compare` — one latent point: model density, maps, FSC, local CCs, flags;
* :mod:`.report` — report.json, per-point files, manifest; :mod:`.figures`, :mod:`.chimerax`.

Entry points: :func:`validate_runs` (compare and write), :func:`compare_runs` (compare only).
"""
from .compare import PointResult
from .flags import Thresholds
from .runs import LatentPoint, RunPair, load_run_pair
from .validate import Comparison, compare_runs, validate_runs

__all__ = ["PointResult", "Thresholds", "LatentPoint", "RunPair", "load_run_pair", "Comparison",
           "compare_runs", "validate_runs"]
