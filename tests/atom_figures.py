"""Figures of merit of a stage-1 run against the AdK ground truth (shared by tests)."""
import numpy as np
from scipy.stats import spearmanr
from sklearn.decomposition import PCA

from cryostar_engine.atom import load_decoder
from cryostar_engine.metrics import rmsd_per_model

from conftest import ADK_DIMS_CA, ADK_GT_FRAME


def best_pc_spearman(z, frames) -> float:
    """|Spearman ρ| of the best of the first three principal components of z with the frame."""
    scores = PCA().fit_transform(z)
    return max(abs(spearmanr(scores[:, k], frames)[0]) for k in range(min(3, z.shape[1])))


def rmsd_ratio(run_dir, z, frames) -> float:
    """Mean Cα RMSD (no superposition) of the decoded structures to each particle's true frame,
    divided by the same for the undeformed reference."""
    decode, beads = load_decoder(run_dir)
    truth = np.load(ADK_DIMS_CA)[frames]
    decoded = rmsd_per_model(decode(z), truth).mean()
    reference = rmsd_per_model(np.broadcast_to(beads.coords_A, truth.shape), truth).mean()
    return float(decoded / reference)


def figures(run_dir, z=None):
    frames = np.load(ADK_GT_FRAME).astype(int)
    z = np.load(run_dir / "z.npy") if z is None else z
    return best_pc_spearman(z, frames), rmsd_ratio(run_dir, z, frames)
