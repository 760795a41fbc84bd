"""A complete CryoSTAR project in Scipion, headless, on the bundled AdK data (a few minutes on CPU).

    python -m cryostar_plugin.demo --out demo_output

Imports the particles (RELION star), the consensus map and the docked reference model, then
runs check inputs → train atom generator → analyze latent space → train density generator →
particles subset with the forms as a new user leaves them (only the length of training and the
CPU threads are set), shows each training's progress lines while it runs, writes the viewer
figures, and prints where everything is and the command that opens the project in the Scipion
GUI (also written to ``OUT/open_gui.sh``).

pyworkflow reads its configuration when first imported, and importing this module already
imports it (through ``cryostar_plugin``), so :func:`main` first prepares a self-contained
Scipion environment under ``OUT`` and re-executes itself once with it.
"""
import argparse
import os
import shlex
import sys
import threading
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
    p.add_argument("--epochs", type=float, default=None,
                   help="atom-generator epochs (default: the engine's default length; "
                        "cryostar-engine train-atom --help states it)")
    p.add_argument("--density-epochs", type=int, default=4, help="density-generator epochs (default 4)")
    p.add_argument("--density-width", type=int, default=256,
                   help="density network width (default 256; 1024 is the method's, for GPUs)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the engine (default 2)")
    p.add_argument("--gpu", action="store_true", help="train on GPU 0 (default: CPU)")
    p.add_argument("--no-density", action="store_true", help="skip the density generator")
    return p.parse_args(argv)


class LogFollower:
    """Prints the engine's progress lines of a running protocol (``progress: …`` in its
    ``logs/run.stdout``) as they are written."""

    def __init__(self, prot, prefix="[demo]   "):
        self.prot, self.prefix = prot, prefix
        self.path, self.offset, self.partial = None, 0, ""

    def poll(self):
        if self.path is None:
            paths = self.prot.getLogPaths() if self.prot.getObjId() else []
            if not paths or not os.path.exists(paths[0]):
                return
            self.path = paths[0]
            print(f"{self.prefix}log: {os.path.abspath(self.path)}", flush=True)
        with open(self.path, errors="replace") as f:
            f.seek(self.offset)
            text = f.read()
            self.offset = f.tell()
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        for line in lines:
            if line.startswith("progress:"):
                print(f"{self.prefix}{line}", flush=True)


def _launch(project, prot, what, follow=False):
    """Run ``prot`` to the end (a failure stops the demo with its log's path); with ``follow``,
    print its progress lines while it runs."""
    t0 = time.time()
    prot.setObjLabel(what.split(" (")[0])
    print(f"[demo] {what} ...", flush=True)
    done, errors = threading.Event(), []

    def run():
        try:
            project.launchProtocol(prot, wait=True)
        except BaseException as err:  # noqa: BLE001  reported below, in the main thread
            errors.append(err)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    follower = LogFollower(prot) if follow else None
    while not done.wait(1.0):
        if follower:
            follower.poll()
    if follower:
        follower.poll()
    if errors:
        raise errors[0]
    if not prot.isFinished():
        log = prot.getLogPaths()[0] if prot.getLogPaths() else "(no log)"
        raise SystemExit(f"[demo] {what} failed: {prot.getErrorMessage()}\n       log: {log}")
    print(f"[demo] {what}: done in {time.time() - t0:.0f} s", flush=True)
    return prot


def runDemo(args):
    """Build and run the project; return a dict of what to show the user."""
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
    # every other setting as the form offers it (= the command line's defaults: box and
    # low-pass chosen by the engine)
    epochs = {} if args.epochs is None else {"numEpochs": args.epochs}
    train = project.newProtocol(ProtCryoStarTrainAtom, numberOfThreads=args.threads, **epochs,
                                **gpu)
    train.inputParticles.set(imp)
    train.inputParticles.setExtended("outputParticles")
    train.inputAtomStruct.set(pdb)
    train.inputAtomStruct.setExtended("outputPdb")
    _launch(project, train, "train atom generator (" + (f"{args.epochs:g} epochs"
            if args.epochs is not None else "the engine's default length") + ")", follow=True)

    analyze = project.newProtocol(ProtCryoStarAnalyze, numClusters=4, numPcs=2, numPoints=8)
    analyze.inputTraining.set(train)
    _launch(project, analyze, "analyze latent space (4 states)")

    density = None
    if not args.no_density:
        density = project.newProtocol(ProtCryoStarTrainDensity, numEpochs=args.density_epochs,
                                      hidden=args.density_width,
                                      numberOfThreads=args.threads, **gpu)
        density.inputParticles.set(train)
        density.inputParticles.setExtended("Particles")
        _launch(project, density, f"train density generator ({args.density_epochs} epochs)",
                follow=True)

    subset = project.newProtocol(ProtCryoStarSubset, doPerCluster=True)
    subset.inputAnalysis.set(analyze)
    _launch(project, subset, "particles subset (one set per state)")

    figures = writeAllFigures(project, [train, analyze] + ([density] if density else []))
    return dict(project=project, train=train, analyze=analyze, density=density, subset=subset,
                figures=figures, corr=pc1Correlation(train, analyze))


def pc1Correlation(train, analyze):
    """|corr(PC1 score, true conformation)| over the particles: the engine's PC scores of the
    analysis, the simulation's ground truth (``gt_frame.npy``, one value per row of the bundled
    star, whose row i Scipion imported as particle id i + 1)."""
    import numpy as np

    from cryostar_plugin.viewers.plots import enginePca, latentTable

    folder = analyze.getAnalysisDir()
    table = latentTable(train.Particles, train._enginePath("particlesStar"), folder)
    scores, _ = enginePca(table, folder)
    truth = np.load(TRUTH).astype(float)[table.ids - 1]
    return abs(np.corrcoef(scores[:, 0], truth)[0, 1])


def guiCommand(projectName, env=None):
    """The shell command that opens ``projectName`` in Scipion's project window with this
    Python and the Scipion variables of ``env`` (default: this process').

    ``pw_project`` re-launches itself through the ``scipion`` launcher (scipion-app) unless
    Python runs optimised, so the command runs it with ``-O``; no launcher is needed.
    """
    env = os.environ if env is None else env
    names = ("SCIPION_DOMAIN", "SCIPION_HOME", "SCIPION_HOSTS", "SCIPION_USER_DATA",
             "SCIPION_PYTHON", "SCIPION_NOTIFY")
    assign = " ".join(f"{n}={shlex.quote(env[n])}" for n in names if n in env)
    return f"{assign} {shlex.quote(sys.executable)} -O -m pyworkflow.apps.pw_project " \
           f"{shlex.quote(projectName)}"


def writeGuiScript(out, projectName):
    """``OUT/open_gui.sh``: the GUI command as a script; returns its path."""
    path = os.path.join(out, "open_gui.sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n# Opens the demo project in the Scipion GUI (needs a display).\n")
        f.write(f"exec env {guiCommand(projectName)} \"$@\"\n")
    os.chmod(path, 0o755)
    return path


def _report(r, out, seconds):
    from cryostar_plugin.outputs import readAnalysisManifest

    project, train, analyze, subset = r["project"], r["train"], r["analyze"], r["subset"]
    p = print
    p("")
    p("=" * 78)
    p(f"CryoSTAR demo finished in {seconds / 60:.1f} min.")
    p(f"|correlation(PC1, true AdK conformation)| = {r['corr']:.2f} "
      "(PC1 of the decoded structures; 1 = it orders the particles by the hidden motion)")
    p(f"\nProject:      {project.getPath()}")
    p(f"Training box: {train.getRunManifest().get('box_px')} px")
    lowPass = train.getRunManifest().get("low_pass") or {}
    if lowPass:
        p(f"Training low-pass: {lowPass.get('A')} Å ({lowPass.get('source')})")
    for prot in (train, analyze):
        p(f"\n{prot.getObjLabel()} ({prot.getRunName()}):")
        for line in prot.summary():
            p(f"  {line}")
        folder = os.path.abspath(prot.getAnalysisDir())
        man = readAnalysisManifest(folder)
        for name, files in (man.get("series") or {}).items():
            p(f"  {name}: {len(files)} models, {os.path.join(folder, os.path.dirname(files[0]))}")
        for name, cxc in (man.get("cxc") or {}).items():
            p(f"  ChimeraX ({name}): chimerax {os.path.join(folder, cxc)}")
    if r["density"] is not None:
        d = r["density"]
        p(f"\n{d.getObjLabel()} ({d.getRunName()}):")
        for line in d.summary():
            p(f"  {line}")
        man = d.getRunManifest()
        runDir = os.path.abspath(d.getRunDir())
        for name, files in (man.get("series") or {}).items():
            p(f"  {name}: {len(files)} maps, {os.path.join(runDir, files[0])} …")
        for name, cxc in (man.get("cxc") or {}).items():
            p(f"  ChimeraX ({name}): chimerax {os.path.join(runDir, cxc)}")
        cxc = os.path.join(d.getValidationDir(), "validation.cxc")
        if os.path.exists(cxc):
            p(f"  Model-map validation: {d.getValidationDir()} (report.json, figures)")
            p(f"  ChimeraX (models coloured by agreement with the maps): chimerax {cxc}")
    else:
        p("\n(train density generator: skipped)")
    p(f"\n{subset.getObjLabel()}:")
    for line in subset.summary():
        p(f"  {line}")
    p("\nFigures:")
    for path in r["figures"]:
        p(f"  {path}")
    p("\nOpen the project in the Scipion GUI (needs a display):")
    p(f"  {writeGuiScript(out, PROJECT)}")
    p("  which runs:")
    p(f"  {guiCommand(PROJECT)}")
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
