"""Wizards of the CryoSTAR forms (Scipion discovers the classes defined here)."""
from pyworkflow.wizard import Wizard

from .lowpass import suggestLowPass
from .protocols import ProtCryoStarTrainAtom

__all__ = ["CryoStarLowPassWizard"]


class CryoStarLowPassWizard(Wizard):
    """Propose the low-pass of 'train atom generator': the resolution where the FSC between the
    reference model's bead density and the consensus map falls to 0.5, and at least 2.5 pixels
    of the training box (see :mod:`cryostar_plugin.lowpass`)."""
    _targets = [(ProtCryoStarTrainAtom, ["lowPass"])]

    def show(self, form, *params):
        prot = form.protocol
        try:
            value = self.suggest(prot)
        except Exception as err:  # any input problem is shown to the user, not raised
            form.showError(f"Cannot propose a low-pass: {err}")
            return
        form.setVar("lowPass", value)

    @staticmethod
    def suggest(prot):
        """The proposed low-pass (Å, one decimal) for the protocol's current inputs."""
        particles = prot.getInputParticles()
        atomStruct = prot._getAtomStructPointer().get()
        if particles is None or atomStruct is None:
            raise ValueError("choose the input particles and the reference model first")
        result = suggestLowPass(atomStruct, particles, prot._getVolumePointer().get(),
                                trainBox=prot._getTrainBox())
        return round(result.suggested_A + 0.049, 1)   # rounded up: never below the floor
