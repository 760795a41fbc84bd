"""The CryoSTAR chain with untouched forms (short training apart), run by
:mod:`.test_boundary` in a Scipion process that cannot import the engine or torch.

Usage (the SCIPION_* variables of the test environment must be set, see
``cryostar_plugin/tests/__init__.py``)::

    PYTHONPATH=cryostar_plugin/tests/engine_blocker \\
    CRYOSTAR_ENV_ACTIVATION="export PATH=$PWD/.venv/bin:\\$PATH" \\
    python -m cryostar_plugin.tests.boundary_chain --data DIR --result result.json

``DIR`` holds ``p48/particles.star`` (with ``map.mrc``) and ``p64/particles.star`` (no map);
the model is the bundled AdK reference.  Protocols: check inputs → train atom generator →
analyze latent space → train density generator (which validates the models against its maps)
→ particles subset on the 48-px particles, and
train atom generator alone on the 64-px ones.  Every form keeps its defaults except the epochs
(short training), the subset's states (the form has no default choice) and the threads row.
The result JSON names each protocol's engine run folder, for the test to compare with the
command line.
"""
import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(REPO, "data", "adk_models", "adk_ref_frame048.pdb")
#: Changed from the defaults: short training, and one thread per job on a shared CI machine.
SHORT = dict(numEpochs=1, numberOfThreads=1)
#: The density stage's default network is 1024 wide: a quarter epoch (24 steps) on the CPU.
SHORT_DENSITY = dict(numEpochs=0.25, numberOfThreads=1)


def _launch(proj, prot):
    proj.launchProtocol(prot, wait=True)
    if not prot.isFinished():
        logs = ""
        for path in prot.getLogPaths():
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    logs += f.read()[-3000:]
        raise SystemExit(f"{prot.getClassName()} did not finish: {prot.getErrorMessage()}\n{logs}")
    return prot


def _imports(proj, folder, withMap):
    from pwem.protocols import ProtImportParticles, ProtImportPdb, ProtImportVolumes

    parts = _launch(proj, proj.newProtocol(
        ProtImportParticles, importFrom=ProtImportParticles.IMPORT_FROM_RELION,
        starFile=os.path.join(folder, "particles.star"), samplingRate=2.0,
        magnification=10000)).outputParticles
    vol = None
    if withMap:
        vol = _launch(proj, proj.newProtocol(
            ProtImportVolumes, filesPath=folder, filesPattern="map.mrc",
            samplingRate=2.0)).outputVolume
    pdb = proj.newProtocol(ProtImportPdb, inputPdbData=ProtImportPdb.IMPORT_FROM_FILES,
                           pdbFile=MODEL)
    if vol is not None:
        pdb.inputVolume.set(vol)
    model = _launch(proj, pdb).outputPdb
    return parts, model


def run(dataDir):
    from pyworkflow.project import Manager

    from cryostar_plugin.protocols import (ProtCryoStarAnalyze, ProtCryoStarCheckInputs,
                                           ProtCryoStarSubset, ProtCryoStarTrainAtom,
                                           ProtCryoStarTrainDensity)

    manager = Manager()
    name = "TestCryoStarBoundaryChain"
    if manager.hasProject(name):
        manager.deleteProject(name)
    proj = manager.createProject(name)
    os.chdir(proj.getPath())
    result = {"modules": None}

    parts, model = _imports(proj, os.path.join(dataDir, "p48"), withMap=True)
    check = _launch(proj, proj.newProtocol(ProtCryoStarCheckInputs, inputParticles=parts,
                                           inputAtomStruct=model, numberOfThreads=1))
    train = _launch(proj, proj.newProtocol(ProtCryoStarTrainAtom, inputParticles=parts,
                                           inputAtomStruct=model, **SHORT))
    analyze = _launch(proj, proj.newProtocol(ProtCryoStarAnalyze, inputTraining=train))
    density = proj.newProtocol(ProtCryoStarTrainDensity, **SHORT_DENSITY)
    density.inputParticles.set(train)
    density.inputParticles.setExtended("Particles")
    _launch(proj, density)
    subset = _launch(proj, proj.newProtocol(ProtCryoStarSubset, inputAnalysis=analyze,
                                            clusters="0,1"))
    parts64, model64 = _imports(proj, os.path.join(dataDir, "p64"), withMap=False)
    train64 = _launch(proj, proj.newProtocol(ProtCryoStarTrainAtom, inputParticles=parts64,
                                             inputAtomStruct=model64, **SHORT))

    result.update({
        "check_report": os.path.abspath(check._getExtraPath("check", "report.json")),
        "atom48": {"run": train.getRunDir(), "args": train._getTrainArgs(),
                   "particles": train.Particles.getSize(),
                   "centres": train.ClusterCentres.getSize()},
        "analyze_centres": analyze.ClusterCentres.getSize(),
        "density48": {"run": density.getRunDir(), "args": density._getTrainArgs(),
                      "volumes": density.Volumes.getSize(),
                      "validate_args": density._getValidateArgs(),
                      "validation_points": len(density.getValidation()[1]["points"]),
                      "summary": density.summary()},
        "subset": subset.Particles.getSize(),
        "atom64": {"run": train64.getRunDir(), "args": train64._getTrainArgs()},
        "modules": sorted(m for m in sys.modules
                          if m.split(".")[0] in ("torch", "cryostar_engine")),
    })
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    result = run(os.path.abspath(args.data))
    with open(args.result, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
