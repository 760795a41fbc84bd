"""Particle data for training: images (downsampled, optionally in memory) with poses and CTF."""
from .particles import Batch, ParticleDataset

__all__ = ["Batch", "ParticleDataset"]
