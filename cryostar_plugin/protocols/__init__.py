"""CryoSTAR protocols (Scipion discovers the classes imported here)."""
from .protocol_base import ProtCryoStarBase
from .protocol_check_inputs import ProtCryoStarCheckInputs
from .protocol_train_atom import ProtCryoStarTrainAtom
from .protocol_analyze import ProtCryoStarAnalyze
from .protocol_subset import ProtCryoStarSubset
from .protocol_train_density import ProtCryoStarTrainDensity

__all__ = ["ProtCryoStarBase", "ProtCryoStarCheckInputs", "ProtCryoStarTrainAtom",
           "ProtCryoStarAnalyze", "ProtCryoStarSubset", "ProtCryoStarTrainDensity"]
