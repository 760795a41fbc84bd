"""The plugin as Scipion sees it: discovery, citations, GUI tree, engine command line.

Runs headless (see the repository's ``conftest.py``, or export the SCIPION_* variables listed in
``cryostar_plugin/tests/__init__.py`` for ``pw_run_tests``).  No project is created here.
"""
import configparser
import json
import os
import subprocess
import sys
import unittest
from importlib import metadata
from unittest import mock

import pwem

import cryostar_plugin
from cryostar_plugin import Plugin, formatGpuList
from cryostar_plugin.constants import CRYOSTAR_ENV_ACTIVATION

PLUGIN_DIR = os.path.dirname(os.path.abspath(cryostar_plugin.__file__))
VENV_BIN = os.path.dirname(sys.executable)


class TestCryoStarPluginDiscovery(unittest.TestCase):
    def test_entry_point_declared(self):
        eps = metadata.entry_points(group="pyworkflow.plugin")
        self.assertIn("cryostar_plugin", [ep.name for ep in eps])
        self.assertEqual([ep.value for ep in eps if ep.name == "cryostar_plugin"],
                         ["cryostar_plugin"])

    def test_found_by_domain(self):
        plugins = pwem.Domain.getPlugins()
        self.assertIn("cryostar_plugin", plugins)
        module = plugins["cryostar_plugin"]
        self.assertIs(module.Plugin, Plugin)
        self.assertTrue(issubclass(module.Plugin, pwem.Plugin))
        # registerPlugin ran _defineVariables: the variable exists (empty by default)
        self.assertIn(CRYOSTAR_ENV_ACTIVATION, Plugin.getVars())

    def test_bibtex_parsed_and_references_resolve(self):
        module = pwem.Domain.getPlugins()["cryostar_plugin"]
        bib = module._bibtex
        self.assertEqual(bib["Li2024cryostar"]["doi"], "10.1038/s41592-024-02486-1")
        self.assertIn("Nature Methods", bib["Li2024cryostar"]["journal"])
        self.assertEqual(bib["Li2023cryostarPreprint"]["doi"], "10.1101/2023.10.31.564872")
        for key in module._references:
            self.assertIn(key, bib)

    def test_labels_name_the_plugin_as_users_know_it(self):
        pwem.Domain.getProtocols()          # registers the classes with their plugin
        from cryostar_plugin.protocols import ProtCryoStarTrainAtom
        self.assertEqual(ProtCryoStarTrainAtom.getClassLabel(),
                         "cryostar - train atom generator")
        # the form's threads row reads "<this> compute"
        self.assertEqual(ProtCryoStarTrainAtom.getClassPackageName(), "cryostar")
        # the package Scipion loads is still cryostar_plugin (entry point, class lookup)
        self.assertIs(ProtCryoStarTrainAtom.getClassPackage(), cryostar_plugin)

    def test_logo_is_a_png(self):
        with open(os.path.join(PLUGIN_DIR, cryostar_plugin._logo), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_protocols_conf_parses_and_names_plugin_classes(self):
        cp = configparser.ConfigParser()
        cp.optionxform = str
        cp.read(os.path.join(PLUGIN_DIR, "protocols.conf"))
        self.assertEqual(set(cp.options("PROTOCOLS")), {"Protocols SPA", "Flexibility Hub"})

        def names(nodes):
            for n in nodes:
                if n["tag"] == "protocol":
                    yield n["value"]
                yield from names(n.get("children", []))

        listed = set()
        for view in cp.options("PROTOCOLS"):
            listed |= set(names(json.loads(cp.get("PROTOCOLS", view))))
        self.assertTrue(all(n.startswith("ProtCryoStar") for n in listed), listed)
        # every concrete protocol the plugin defines appears in the GUI tree
        ours = {name for name, cls in pwem.Domain.getProtocols().items()
                if cls.__module__.startswith("cryostar_plugin.") and not cls.isBase()}
        self.assertLessEqual(ours, listed)


class TestCryoStarEngineCommand(unittest.TestCase):
    """How the engine is launched: same interpreter by default, or a separate environment."""

    def test_gpu_list_formats(self):
        self.assertEqual(formatGpuList([0, 1]), "0,1")
        self.assertEqual(formatGpuList("0 1"), "0,1")
        self.assertEqual(formatGpuList(" 2, 3 "), "2,3")
        self.assertIsNone(formatGpuList(None))
        self.assertIsNone(formatGpuList(""))
        with self.assertRaises(ValueError):
            formatGpuList("0 a")

    def test_default_uses_this_interpreter(self):
        with mock.patch.dict(Plugin._vars, {CRYOSTAR_ENV_ACTIVATION: ""}):
            self.assertFalse(Plugin.usesSeparateEnv())
            prog = Plugin.getProgram("train-atom", gpus=[0])
            self.assertEqual(prog, f"CUDA_VISIBLE_DEVICES=0 {sys.executable} -m cryostar_engine "
                                   "train-atom")
            # several GPUs: the training commands run under torchrun, one process per GPU
            for command in ("train-atom", "train-density"):
                self.assertEqual(Plugin.getProgram(command, gpus="0 1"),
                                 f"CUDA_VISIBLE_DEVICES=0,1 {sys.executable} -m torch.distributed.run "
                                 f"--standalone --nproc_per_node=2 -m cryostar_engine {command}")
            self.assertEqual(Plugin.getProgram("analyze", gpus=[0, 1]),
                             f"CUDA_VISIBLE_DEVICES=0,1 {sys.executable} -m cryostar_engine analyze")
            self.assertEqual(Plugin.getProgram("check-inputs"),
                             f"{sys.executable} -m cryostar_engine check-inputs")
            with mock.patch.dict(os.environ, {"PYTHONPATH": "/scipion/extra"}):
                self.assertEqual(Plugin.getEnviron().get("PYTHONPATH"), "/scipion/extra")
            self.assertEqual(Plugin.getActiveVersion(), "0.1.0")
            self.assertEqual(Plugin.validateInstallation(), [])

    def test_missing_engine_is_one_line(self):
        """An activation that cannot work: no version, and one line naming the variable and
        the shell's complaint (here: no conda on this machine)."""
        with mock.patch.dict(Plugin._vars, {CRYOSTAR_ENV_ACTIVATION: "conda activate nowhere"}), \
                mock.patch.object(Plugin, "_condaActivationCmd", ""):
            problems = Plugin.validateInstallation()
            self.assertEqual(Plugin.getActiveVersion(), "")
        self.assertEqual(len(problems), 1, problems)
        self.assertNotIn("\n", problems[0])
        self.assertIn(CRYOSTAR_ENV_ACTIVATION, problems[0])
        self.assertIn("conda", problems[0])
        self.assertIn("exited with status 127", problems[0])

    def test_separate_env_prefix_and_pythonpath(self):
        with mock.patch.dict(Plugin._vars, {CRYOSTAR_ENV_ACTIVATION: "conda activate cryostar-0.1.0"}), \
                mock.patch.object(Plugin, "_condaActivationCmd", "eval \"$(conda shell.bash hook)\"&&"):
            self.assertTrue(Plugin.usesSeparateEnv())
            self.assertEqual(Plugin.getProgram("analyze", gpus="1"),
                             'eval "$(conda shell.bash hook)"&& conda activate cryostar-0.1.0 && '
                             "CUDA_VISIBLE_DEVICES=1 python -m cryostar_engine analyze")
            with mock.patch.dict(os.environ, {"PYTHONPATH": "/scipion/extra"}):
                self.assertNotIn("PYTHONPATH", Plugin.getEnviron())

    def _run(self, program):
        return subprocess.run(f"{program} --help", shell=True, env=Plugin.getEnviron(),
                              capture_output=True, text=True, timeout=120)

    def test_program_runs_with_this_interpreter(self):
        with mock.patch.dict(Plugin._vars, {CRYOSTAR_ENV_ACTIVATION: ""}):
            done = self._run(Plugin.getProgram("check-inputs", gpus=[0]))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("--particles", done.stdout)

    def test_program_runs_in_an_activated_env(self):
        # Any shell command can "activate" the environment; here: put the venv first on PATH,
        # so the bare ``python`` of the separate-env command is this venv's, without PYTHONPATH.
        activate = f"export PATH={VENV_BIN}:$PATH"
        with mock.patch.dict(Plugin._vars, {CRYOSTAR_ENV_ACTIVATION: activate}), \
                mock.patch.object(Plugin, "_condaActivationCmd", ""):
            done = self._run(Plugin.getProgram("check-inputs"))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("--particles", done.stdout)
        with mock.patch.dict(Plugin._vars, {CRYOSTAR_ENV_ACTIVATION: activate}), \
                mock.patch.object(Plugin, "_condaActivationCmd", ""):
            self.assertEqual(Plugin.getActiveVersion(), "0.1.0")   # asked of that environment
            self.assertEqual(Plugin.validateInstallation(), [])

    def test_several_gpus_train_under_torchrun(self):
        """The command for GPUs "0 1" starts two DDP processes that train one run together.
        Here they run on the CPU (gloo): ``--device cpu`` ignores CUDA_VISIBLE_DEVICES."""
        import tempfile
        repo = os.path.dirname(PLUGIN_DIR)
        out = os.path.join(tempfile.mkdtemp(prefix="cryostar-torchrun-"), "run")
        args = (f"--particles {repo}/data/adk_sim48/particles.star "
                f"--model {repo}/data/adk_models/adk_ref_frame048.pdb --out {out} --device cpu "
                "--box 24 --epochs 1 --batch 64 --low-pass 10 --threads 1 --eval-every-epochs 1")
        with mock.patch.dict(Plugin._vars, {CRYOSTAR_ENV_ACTIVATION: ""}):
            program = Plugin.getProgram("train-atom", gpus="0 1")
        done = subprocess.run(f"{program} {args}", shell=True, env=Plugin.getEnviron(),
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        self.assertIn("× 2 processes", open(os.path.join(out, "run.log")).read())
        with open(os.path.join(out, "manifest.json")) as f:
            self.assertEqual(json.load(f)["status"], "finished")


if __name__ == "__main__":
    unittest.main()
