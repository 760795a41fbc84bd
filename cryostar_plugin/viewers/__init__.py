"""CryoSTAR viewers (Scipion discovers the classes imported here)."""
from .viewer_cryostar import CryoStarViewer, writeAllFigures

__all__ = ["CryoStarViewer", "writeAllFigures"]
