"""Stage 2: the density generator (a Hartley-space coordinate MLP conditioned on fixed z)."""
from .config import DensityConfig
from .hartley import (HalfGrid, assemble_full, fourier_from_pair, fourier_to_hartley, half_grid,
                      hartley_to_fourier, partner_index)
from .inputs import DensityInputs, load_inputs, load_latents
from .latents import LatentSeries, latent_points
from .loss import estimate_f_std, fourier_mse
from .model import TrainedDensity, build_model, load_trained
from .network import HartleyField
from .results import write_eval_volumes, write_outputs
from .slicing import ctf_half, observed_slices, predict_slices, slice_coords
from .training import DensityTrainer, resume_config, train_density
from .volumes import VolumeRenderer

__all__ = ["DensityConfig", "HalfGrid", "assemble_full", "fourier_from_pair", "fourier_to_hartley",
           "half_grid", "hartley_to_fourier", "partner_index", "DensityInputs", "load_inputs",
           "load_latents", "LatentSeries", "latent_points", "estimate_f_std", "fourier_mse",
           "TrainedDensity", "build_model", "load_trained", "HartleyField", "write_eval_volumes",
           "write_outputs", "ctf_half", "observed_slices", "predict_slices", "slice_coords",
           "DensityTrainer", "resume_config", "train_density", "VolumeRenderer"]
