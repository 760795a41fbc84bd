"""CryoSTAR protocols (Scipion discovers the classes imported here)."""
from .protocol_base import ProtCryoStarBase
from .protocol_check_inputs import ProtCryoStarCheckInputs
from .protocol_train_atom import ProtCryoStarTrainAtom

__all__ = ["ProtCryoStarBase", "ProtCryoStarCheckInputs", "ProtCryoStarTrainAtom"]
