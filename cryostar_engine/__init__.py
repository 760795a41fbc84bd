"""cryostar_engine: CryoSTAR heterogeneity analysis (atom and density generators) in PyTorch.

A library first; ``cryostar-engine`` (``python -m cryostar_engine``) is a thin CLI over it.
Importing the package never needs a GPU.
"""
__version__ = "0.1.0"
