"""Stage 1, the atom generator: a VAE whose decoder moves the reference model's beads."""
from .config import AtomConfig, default_epochs
from .evaluate import load_decoder, load_run
from .training import train_atom

__all__ = ["AtomConfig", "default_epochs", "load_decoder", "load_run", "train_atom"]
