"""Shared fixtures: paths of the bundled data (inside the repository, never ../shared)."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
ADK_STAR = DATA / "adk_sim48" / "particles.star"
ADK_MAP = DATA / "adk_sim48" / "ideal_map_frame048.mrc"
ADK_REF = DATA / "adk_models" / "adk_ref_frame048.pdb"
ADK_GT_FRAME = DATA / "adk_sim48" / "gt_frame.npy"
ADK_DIMS_CA = DATA / "adk_models" / "adk_dims_ca.npy"
TRPV1_STAR = DATA / "trpv1_real10" / "trpv1_small_stack.star"


@pytest.fixture(scope="session")
def adk_meta():
    from cryostar_engine.io import read_particles
    return read_particles(ADK_STAR)
