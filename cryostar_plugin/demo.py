"""A complete CryoSTAR project in Scipion, headless, on the bundled AdK data (a few minutes on CPU).

    python -m cryostar_plugin.demo --out demo_output

Imports the particles (RELION star), the consensus map and the docked reference model, then
runs check inputs → train atom generator → analyze latent space → train density generator →
particles subset, writes the viewer figures and ChimeraX scripts, and prints
where everything is and how to open the project in the Scipion GUI.

pyworkflow reads its configuration when first imported, and importing this module already
imports it (through ``cryostar_plugin``), so :func:`main` first prepares a self-contained
Scipion environment under ``OUT`` and re-executes itself once with it.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DATA = os.path.join(REPO, "data")
STAR = os.path.join(DATA, "adk_sim48", "particles.star")
MAP = os.path.join(DATA, "adk_sim48", "ideal_map_frame048.mrc")
MODEL = os.path.join(DATA, "adk_models", "adk_ref_frame048.pdb")
TRUTH = os.path.join(DATA, "adk_sim48", "gt_frame.npy")
PROJECT = "cryostar_demo"
_MARK = "CRYOSTAR_DEMO_ENV"


def scipionEnvironment(out):
    """Variables for a throw-away headless Scipion rooted in ``out`` (hosts.conf written)."""
    home = os.path.join(out, "scipion_home")
    hosts = os.path.join(home, "config", "hosts.conf")
    os.makedirs(os.path.dirname(hosts), exist_ok=True)
    with open(hosts, "w") as f:
        f.write("[localhost]\nPARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s\n")
    return {"SCIPION_DOMAIN": "pwem", "SCIPION_HOME": home, "SCIPION_HOSTS": hosts,
            "SCIPION_USER_DATA": out, "SCIPION_PYTHON": sys.executable,
            "SCIPION_TEST_NOSYNC": "1", "SCIPION_NOTIFY": "False"}


def _parseArgs(argv):
    p = argparse.ArgumentParser(prog="python -m cryostar_plugin.demo", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="demo_output", help="folder for the project (default demo_output)")
    p.add_argument("--epochs", type=float, default=160, help="atom-generator epochs (default 160)")
    p.add_argument("--density-epochs", type=int, default=4, help="density-generator epochs (default 4)")
    p.add_argument("--density-width", type=int, default=256,
                   help="density network width (default 256; 1024 is the method's, for GPUs)")
    p.add_argument("--box", type=int, default=32, help="training box in px (default 32)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the engine (default 2)")
    p.add_argument("--gpu", action="store_true", help="train on GPU 0 (default: CPU)")
    p.add_argument("--no-density", action="store_true", help="skip the density generator")
    return p.parse_args(argv)


def _launch(project, prot, what):
    t0 = time.time()
    prot.setObjLabel(what.split(" (")[0])
    print(f"[demo] {what} ...", flush=True)
    project.launchProtocol(prot, wait=True)
    if not prot.isFinished():
        log = prot.getLogPaths()[0] if prot.getLogPaths() else "(no log)"
        raise SystemExit(f"[demo] {what} failed: {prot.getErrorMessage()}\n       log: {log}")
    print(f"[demo] {what}: done in {time.time() - t0:.0f} s", flush=True)
    return prot


def runDemo(args):
    """Build and run the project; return a dict of what to show the user."""
    import numpy as np
    from pwem.protocols import ProtImportParticles, ProtImportPdb, ProtImportVolumes
    from pyworkflow.project import Manager

    from cryostar_plugin.protocols import (ProtCryoStarAnalyze, ProtCryoStarCheckInputs,
                                           ProtCryoStarSubset, ProtCryoStarTrainAtom,
                                           ProtCryoStarTrainDensity)
    from cryostar_plugin.viewers import writeAllFigures

    manager = Manager()
    if manager.hasProject(PROJECT):
        manager.deleteProject(PROJECT)
    project = manager.createProject(PROJECT)
    os.chdir(project.getPath())
    gpu = dict(useGpu=True, gpuList="0") if args.gpu else dict(useGpu=False)

    imp = _launch(project, project.newProtocol(
        ProtImportParticles, importFrom=ProtImportParticles.IMPORT_FROM_RELION, starFile=STAR, samplingRate=2.0,
        magnification=10000), "import particles")
    vol = _launch(project, project.newProtocol(
        ProtImportVolumes, filesPath=os.path.dirname(MAP),
        filesPattern=os.path.basename(MAP), samplingRate=2.0), "import consensus map")
    pdb = project.newProtocol(ProtImportPdb, inputPdbData=ProtImportPdb.IMPORT_FROM_FILES, pdbFile=MODEL)
    pdb.inputVolume.set(vol)
    pdb.inputVolume.setExtended("outputVolume")
    _launch(project, pdb, "import reference model")

    check = project.newProtocol(ProtCryoStarCheckInputs, maxParticles=384)
    check.inputParticles.set(imp)
    check.inputParticles.setExtended("outputParticles")
    check.inputAtomStruct.set(pdb)
    check.inputAtomStruct.setExtended("outputPdb")
    _launch(project, check, "check inputs")
    # the check suggests a low-pass at the full box; the training box must still resolve it
    trainApix = 2.0 * 48 / args.box
    lowPass = max(float(check.getReport().get("suggested_low_pass_A", 8.0)), 2.5 * trainApix)

    train = project.newProtocol(
        ProtCryoStarTrainAtom, boxSize=args.box,
        numEpochs=args.epochs, zDim=4, lowPass=round(lowPass, 1), numClusters=6, numPcs=2,
        numPoints=8, doCheckInputs=False, numberOfThreads=args.threads, **gpu)
    train.inputParticles.set(imp)
    train.inputParticles.setExtended("outputParticles")
    train.inputAtomStruct.set(pdb)
    train.inputAtomStruct.setExtended("outputPdb")
    _launch(project, train, f"train atom generator ({args.epochs:g} epochs, box {args.box}, "
                            f"low-pass {lowPass:.1f} Å from check inputs)")

    analyze = project.newProtocol(ProtCryoStarAnalyze, numClusters=4, numPcs=2, numPoints=8)
    analyze.inputTraining.set(train)
    _launch(project, analyze, "analyze latent space (4 states)")

    density = None
    if not args.no_density:
        density = project.newProtocol(ProtCryoStarTrainDensity,
                                      boxSize=args.box, numEpochs=args.density_epochs,
                                      hidden=args.density_width, residualLayers=2,
                                      batchSize=32, numClusters=4, numPcs=2, numPoints=8,
                                      numberOfThreads=args.threads, **gpu)
        density.inputParticles.set(train)
        density.inputParticles.setExtended("Particles")
        _launch(project, density, "train density generator")

    subset = project.newProtocol(ProtCryoStarSubset, doPerCluster=True)
    subset.inputAnalysis.set(analyze)
    _launch(project, subset, "particles subset (one set per state)")

    figures = writeAllFigures(project, [train, analyze] + ([density] if density else []))
    z = np.array([p.getZFlex() for p in train.Particles.iterItems(orderBy="id")])
    truth = np.load(TRUTH).astype(float)
    zc = z - z.mean(0)
    pc1 = zc @ np.linalg.svd(zc, full_matrices=False)[2][0]
    corr = abs(np.corrcoef(pc1, truth)[0, 1])
    return dict(project=project, train=train, analyze=analyze, density=density, subset=subset,
                figures=figures, corr=corr, lowPass=lowPass)


def _report(r, out, seconds):
    project, train, analyze, subset = r["project"], r["train"], r["analyze"], r["subset"]
    p = print
    p("")
    p("=" * 78)
    p(f"CryoSTAR demo finished in {seconds / 60:.1f} min.")
    p(f"|correlation(PC1 of z, true AdK conformation)| = {r['corr']:.2f} "
      "(1 = the latent space orders the particles by the hidden motion)")
    p(f"\nProject:      {project.getPath()}")
    for prot in (train, analyze):
        p(f"\n{prot.getObjLabel()} ({prot.getRunName()}):")
        for line in prot.summary():
            p(f"  {line}")
        p(f"  models (k-means centres): {os.path.abspath(prot._getExtraPath('models'))}/kmeans_*.pdb")
        p(f"  models (PC trajectories): {os.path.abspath(prot._getExtraPath('models'))}/pca_*.pdb")
        p(f"  ChimeraX:                 chimerax {os.path.abspath(prot._getExtraPath('models', 'kmeans.cxc'))}")
        p(f"                            chimerax {os.path.abspath(prot._getExtraPath('models', 'trajectories.cxc'))}")
    if r["density"] is not None:
        d = r["density"]
        p(f"\n{d.getObjLabel()} ({d.getRunName()}):")
        for line in d.summary():
            p(f"  {line}")
        p(f"  maps:     {d.getRunDir()}/vol_*.mrc (Volumes output)")
        p(f"  ChimeraX: chimerax {d.getChimeraScript()}")
    else:
        p("\n(train density generator: skipped)")
    p(f"\n{subset.getObjLabel()}:")
    for line in subset.summary():
        p(f"  {line}")
    p("\nFigures:")
    for path in r["figures"]:
        p(f"  {path}")
    p("\nOpen the project in the Scipion GUI:")
    p(f"  Scipion's project manager → 'Import project' → {project.getPath()}")
    p(f"  or, with a display, in this environment:")
    p(f"  SCIPION_USER_DATA={os.path.abspath(out)} SCIPION_DOMAIN=pwem "
      f"SCIPION_HOSTS={os.environ['SCIPION_HOSTS']} \\")
    p(f"    {sys.executable} -m pyworkflow.apps.pw_project {PROJECT}")
    p("=" * 78)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parseArgs(argv)
    out = os.path.abspath(args.out)
    if os.environ.get(_MARK) != out:
        os.makedirs(out, exist_ok=True)
        env = dict(os.environ, **scipionEnvironment(out), **{_MARK: out})
        env.setdefault("OMP_NUM_THREADS", str(args.threads))
        os.execve(sys.executable, [sys.executable, "-m", "cryostar_plugin.demo"] + argv, env)
    t0 = time.time()
    result = runDemo(args)
    _report(result, out, time.time() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
