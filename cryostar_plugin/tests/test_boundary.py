"""The plugin never imports the engine or torch: a static check of its modules, and a Scipion
process in which those imports raise (``engine_blocker/sitecustomize.py`` on ``PYTHONPATH``)
that still loads every plugin module and reaches the engine through
``CRYOSTAR_ENV_ACTIVATION``."""
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

import mrcfile
import numpy as np

import cryostar_plugin

PLUGIN_DIR = os.path.dirname(os.path.abspath(cryostar_plugin.__file__))
BLOCKER = os.path.join(PLUGIN_DIR, "tests", "engine_blocker")
VENV_BIN = os.path.dirname(sys.executable)
#: Activates "an environment that has the engine": this venv, first on PATH.
ACTIVATION = f"export PATH={VENV_BIN}:$PATH"
FORBIDDEN = ("cryostar_engine", "torch")
REPO = os.path.dirname(PLUGIN_DIR)
DATA = os.path.join(REPO, "data", "adk_sim48")
MODEL = os.path.join(REPO, "data", "adk_models", "adk_ref_frame048.pdb")
#: config.json keys that name files or folders (they differ between any two runs).
PATH_KEYS = {"particles", "model", "map", "out", "datadir", "z_path"}
#: The threads row is Scipion's booking of cores: the protocols always pass it.
RUN_KEYS = {"threads"}
#: The engine's test-only "stop as if killed after N steps" (not a setting, not in the form).
STOP_ENV = "CRYOSTAR_TEST_STOP_AFTER_STEPS"


def pluginModules():
    """Paths of the plugin's own modules (its tests excluded)."""
    for root, dirs, files in os.walk(PLUGIN_DIR):
        dirs[:] = [d for d in dirs if d not in ("tests", "__pycache__")]
        yield from (os.path.join(root, f) for f in files if f.endswith(".py"))


def importedNames(path):
    """Top-level package of every import statement in a file (module level or not)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


def blockedEnv(activation=ACTIVATION):
    """Environment of a Scipion process that cannot import the engine or torch."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (BLOCKER, env.get("PYTHONPATH")) if p)
    env["CRYOSTAR_ENV_ACTIVATION"] = activation
    return env


def runBlocked(code, activation=ACTIVATION, timeout=600):
    """Run Python ``code`` in a blocked Scipion process; return its last stdout line as JSON."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=blockedEnv(activation),
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"blocked process failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class TestCryoStarPluginBoundary(unittest.TestCase):
    def test_no_module_imports_the_engine_or_torch(self):
        offenders = {os.path.relpath(p, PLUGIN_DIR): sorted(set(importedNames(p)) & set(FORBIDDEN))
                     for p in pluginModules()}
        self.assertEqual({k: v for k, v in offenders.items() if v}, {})

    def test_blocker_blocks(self):
        out = runBlocked("""
            import json
            result = {}
            for name in ("torch", "cryostar_engine", "cryostar_engine.cli"):
                try:
                    __import__(name)
                    result[name] = "imported"
                except ImportError as err:
                    result[name] = str(err)
            print(json.dumps(result))
        """)
        for name in ("torch", "cryostar_engine", "cryostar_engine.cli"):
            self.assertIn("blocked", out[name])

    def test_plugin_loads_and_finds_the_engine_through_the_activation(self):
        code = """
            import json, sys
            import pwem
            plugin = pwem.Domain.getPlugins()["cryostar_plugin"]
            pwem.Domain.getProtocols(); pwem.Domain.getViewers(); pwem.Domain.getWizards()
            import cryostar_plugin.protocols, cryostar_plugin.viewers, cryostar_plugin.wizards
            P = plugin.Plugin
            print(json.dumps({"version": P.getActiveVersion(), "problems": P.validateInstallation(),
                              "loaded": sorted(m for m in sys.modules
                                               if m.split(".")[0] in ("torch", "cryostar_engine")),
                              "protocols": sorted(n for n, c in pwem.Domain.getProtocols().items()
                                                  if c.__module__.startswith("cryostar_plugin"))}))
        """
        out = runBlocked(code)
        self.assertEqual(out["loaded"], [])
        self.assertEqual(out["version"], cryostar_plugin.__version__)
        self.assertEqual(out["problems"], [])
        self.assertIn("ProtCryoStarTrainAtom", out["protocols"])
        # without the activation the engine would run with Scipion's (blocked) Python: one line
        out = runBlocked(code, activation="")
        self.assertEqual(out["version"], "")
        self.assertEqual(len(out["problems"]), 1)
        self.assertIn("blocked", out["problems"][0])
        self.assertIn("CRYOSTAR_ENV_ACTIVATION", out["problems"][0])


def makeData(folder):
    """The bundled 48-px particles and map (``p48``) and the same particles zero-padded to
    64 px (``p64``, same poses and CTF, no map) under ``folder``."""
    p48, p64 = os.path.join(folder, "p48"), os.path.join(folder, "p64")
    os.makedirs(p48)
    os.makedirs(p64)
    for name in ("particles.star", "particles.mrcs"):
        shutil.copy(os.path.join(DATA, name), p48)
    shutil.copy(os.path.join(DATA, "ideal_map_frame048.mrc"), os.path.join(p48, "map.mrc"))
    with mrcfile.open(os.path.join(DATA, "particles.mrcs"), permissive=True) as m:
        stack = m.data.astype(np.float32)
    with mrcfile.new(os.path.join(p64, "particles.mrcs")) as m:
        m.set_data(np.pad(stack, ((0, 0), (8, 8), (8, 8))))
        m.voxel_size = 2.0
    with open(os.path.join(DATA, "particles.star")) as f:
        text = f.read()
    optics = "300.000000\t2.000000\t48\t2"
    assert optics in text
    with open(os.path.join(p64, "particles.star"), "w") as f:
        f.write(text.replace(optics, "300.000000\t2.000000\t64\t2"))
    return folder


def cli(command, *args, env=None):
    """Run ``cryostar-engine`` as a user would (this venv); fail the test on a non-zero exit."""
    done = subprocess.run([sys.executable, "-m", "cryostar_engine", command, *map(str, args)],
                          capture_output=True, text=True, timeout=900,
                          env=None if env is None else {**os.environ, **env})
    if done.returncode != 0:
        raise AssertionError(f"cryostar-engine {command} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def comparableConfig(runDir):
    """A run's config.json without paths, Scipion's run settings and the engine's test-only
    hooks (``debug_*``)."""
    with open(os.path.join(runDir, "config.json")) as f:
        cfg = json.load(f)
    return {k: v for k, v in cfg.items()
            if k not in PATH_KEYS | RUN_KEYS and not k.startswith("debug_")}


class TestCryoStarBoundaryChain(unittest.TestCase):
    """check inputs → train atom → analyze → train density → subset (48 px), and train atom at
    64 px, all with untouched forms apart from a short training, in a Scipion process that
    cannot import the engine or torch; then the same data through the command line with its
    defaults: the resolved configs must be equal, paths and threads aside."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cryostar-boundary-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        data = makeData(os.path.join(cls.tmp, "data"))
        result = os.path.join(cls.tmp, "result.json")
        done = subprocess.run([sys.executable, "-m", "cryostar_plugin.tests.boundary_chain",
                               "--data", data, "--result", result], env=blockedEnv(),
                              capture_output=True, text=True, timeout=1800, cwd=REPO)
        if done.returncode != 0:
            raise AssertionError(f"the blocked chain failed:\n{done.stdout[-2000:]}\n"
                                 f"{done.stderr[-4000:]}")
        with open(result) as f:
            cls.result = json.load(f)
        cls.data = data

    def test_chain_finished_without_engine_imports(self):
        r = self.result
        self.assertEqual(r["modules"], [])
        self.assertEqual(r["atom48"]["particles"], 384)
        self.assertEqual(r["atom48"]["centres"], 10)          # the engine's default k
        self.assertEqual(r["analyze_centres"], 10)
        self.assertEqual(r["density48"]["volumes"], 10 + 3 * 10)   # k, PCs × points
        # the density protocol's default model-map validation ran through the engine too
        self.assertEqual(r["density48"]["validation_points"], r["density48"]["volumes"])
        self.assertIn("Model-map validation: ", r["density48"]["summary"][-1])
        self.assertGreater(r["subset"], 0)

    def test_untouched_forms_pass_only_inputs_and_run_settings(self):
        for key in ("atom48", "atom64", "density48"):
            args = self.result[key]["args"]
            flags = [a for a in args if a.startswith("--")]
            self.assertLessEqual(set(flags), {"--particles", "--model", "--map", "--out", "--z",
                                              "--threads", "--epochs"}, (key, args))
        # validate, which the command line's train-density does not run, gets its defaults too
        args = self.result["density48"]["validate_args"]
        self.assertEqual({a for a in args if a.startswith("--")},
                         {"--atom-run", "--density-run", "--out", "--threads"}, args)

    def _cliAtom(self, name, folder, withMap):
        out = os.path.join(self.tmp, f"cli_{name}")
        args = ["--particles", os.path.join(folder, "particles.star"), "--model", MODEL,
                "--out", out, "--epochs", 1]
        if withMap:
            args += ["--map", os.path.join(folder, "map.mrc")]
        cli("train-atom", *args)
        return out

    def test_atom_config_equals_the_cli_default_at_48_px(self):
        cliRun = self._cliAtom("atom48", os.path.join(self.data, "p48"), withMap=True)
        self.assertEqual(comparableConfig(self.result["atom48"]["run"]), comparableConfig(cliRun))

    def test_atom_config_equals_the_cli_default_at_64_px(self):
        cliRun = self._cliAtom("atom64", os.path.join(self.data, "p64"), withMap=False)
        ours = comparableConfig(self.result["atom64"]["run"])
        self.assertEqual(ours, comparableConfig(cliRun))

    def test_density_config_equals_the_cli_default(self):
        # the config is resolved before the first step: the command line run stops after one
        # (the engine's test-only stop), sparing a second generation of the 40 default volumes
        atom = self.result["atom48"]["run"]
        out = os.path.join(self.tmp, "cli_density48")
        cli("train-density", "--particles", os.path.join(self.data, "p48", "particles.star"),
            "--z", os.path.join(atom, "z.npy"), "--out", out, "--epochs", 0.25,
            env={STOP_ENV: "1"})
        self.assertEqual(comparableConfig(self.result["density48"]["run"]),
                         comparableConfig(out))

if __name__ == "__main__":
    unittest.main()
