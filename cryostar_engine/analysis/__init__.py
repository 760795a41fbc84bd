"""Latent-space analysis (PCA, trajectories, k-means states, figures, ChimeraX) and particle
subsets (RELION STAR files of selected particles).

Public API:

* :func:`run_analysis` (``z`` + optional :class:`StructureDecoder`) → outputs + manifest;
* :func:`fit_pca`, :func:`pc_trajectory`, :func:`kmeans_states` — the pieces;
* :func:`write_star_subsets` and the selection helpers for ``export-subset``.
"""
from .chimerax import trajectory_script, write_trajectory_cxc
from .clustering import KMeansStates, dendrogram_order, kmeans_states
from .pca import PcaResult, Trajectory, check_latent, fit_pca, pc_trajectory
from .report import MANIFEST, AnalysisConfig, StructureDecoder, read_manifest, run_analysis
from .run_files import (RunInfo, analysis_dir, load_analysis_scores, load_latent, load_pc_scores,
                        run_info, run_latent_path)
from .subset import (IMAGE_PATH_MODES, SubsetResult, load_indices, load_labels,
                     parse_cluster_list, read_star_rows, select_clusters, select_pc_range,
                     write_star_subsets)

__all__ = ["trajectory_script", "write_trajectory_cxc",
           "KMeansStates", "dendrogram_order", "kmeans_states", "PcaResult", "Trajectory",
           "check_latent", "fit_pca", "pc_trajectory", "MANIFEST", "AnalysisConfig",
           "StructureDecoder", "read_manifest", "run_analysis", "analysis_dir", "load_latent",
           "load_pc_scores", "load_analysis_scores", "run_latent_path", "RunInfo", "run_info", "IMAGE_PATH_MODES", "SubsetResult",
           "load_indices", "load_labels", "parse_cluster_list", "read_star_rows",
           "select_clusters", "select_pc_range", "write_star_subsets"]
