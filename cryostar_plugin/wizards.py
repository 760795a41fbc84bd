"""Wizards of the CryoSTAR forms (Scipion discovers the classes defined here)."""
from pyworkflow.wizard import Wizard

from .convert import inspectModel
from .protocols import ProtCryoStarTrainAtom

__all__ = ["CryoStarLowPassWizard"]


class CryoStarLowPassWizard(Wizard):
    """Fill 'Low-pass (Å)' with the engine's suggestion for the current inputs: the resolution
    where the FSC between the reference model's bead density and the consensus map falls to
    0.5, and at least 2.5 pixels of the training box (``cryostar-engine inspect-model``; the
    number ``--low-pass auto`` resolves to and ``check inputs`` reports)."""
    _targets = [(ProtCryoStarTrainAtom, ["lowPass"])]

    def show(self, form, *params):
        try:
            value = self.suggest(form.protocol)
        except Exception as err:  # any input problem is shown to the user, not raised
            form.showError(f"Cannot propose a low-pass: {err}")
            return
        form.setVar("lowPass", value)

    @staticmethod
    def suggest(prot):
        """The engine's suggested low-pass (Å) for the protocol's current inputs."""
        particles = prot.getInputParticles()
        atomStruct = prot._getAtomStructPointer().get()
        if particles is None or atomStruct is None:
            raise ValueError("choose the input particles and the reference model first")
        report = inspectModel(atomStruct, particles, prot._getVolumePointer().get(),
                              trainBox=prot.boxSize.get())
        if report["low_pass"] is None:
            raise ValueError("the suggestion needs the consensus map the model was docked into "
                             "(give it, or link it to the model at import)")
        return round(float(report["low_pass"]["suggested_A"]), 2)
