"""Reconstruction from known poses (a quick Wiener back-projection for input checks)."""
from .backproject import Backprojector

__all__ = ["Backprojector"]
