"""The training forms are the engine's settings: the shipped copy of ``--settings-json`` is the
engine's current output, every bound field has the engine's default, choices and help, an
untouched form passes no setting, and the Advanced tab has something at the Normal level.

(The end-to-end proof, an untouched form and the command line resolving to the same
``config.json``, is in :mod:`.test_boundary`.)"""
import functools
import json
import os
import subprocess
import sys
import unittest

import pwem
import pyworkflow.protocol.params as params
from pyworkflow.tests import BaseTest, setupTestProject

from cryostar_plugin import formsettings
from cryostar_plugin.formsettings import ATOM, DENSITY, formHelp, settingArgs, toLabels
from cryostar_plugin.protocols import (ProtCryoStarAnalyze, ProtCryoStarCheckInputs,
                                       ProtCryoStarTrainAtom, ProtCryoStarTrainDensity)
from cryostar_plugin.protocols import protocol_train_atom as atom
from cryostar_plugin.protocols import protocol_train_density as density

STAGES = [(ProtCryoStarTrainAtom, atom.SPECS, ATOM), (ProtCryoStarTrainDensity, density.SPECS,
                                                      DENSITY)]


@functools.lru_cache(maxsize=None)
def liveSettings(command):
    """``cryostar-engine <command> --settings-json`` (run once per command)."""
    done = subprocess.run([sys.executable, "-m", "cryostar_engine", command, "--settings-json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class TestCryoStarEngineSettingsCopy(unittest.TestCase):
    def test_shipped_copy_is_the_engines_output(self):
        for command in (ATOM, DENSITY):
            with open(os.path.join(os.path.dirname(formsettings.__file__), "engine_settings",
                                   f"{command}.json"), encoding="utf-8") as f:
                shipped = json.load(f)
            self.assertEqual(shipped, liveSettings(command),
                             f"refresh cryostar_plugin/engine_settings/{command}.json with "
                             f"'cryostar-engine {command} --settings-json'")


class TestCryoStarForms(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        pwem.Domain.getProtocols()

    def test_fields_carry_the_engines_defaults_choices_and_help(self):
        for cls, specs, command in STAGES:
            prot = self.newProtocol(cls)
            for spec in specs:
                rec = {s["name"]: s for s in liveSettings(command)["settings"]}[spec.setting]
                param = prot.getParam(spec.param)
                with self.subTest(command=command, field=spec.param):
                    self.assertEqual(param.label.get(), spec.label)
                    value = getattr(prot, spec.param).get()
                    if rec["choices"] and rec["type"] != "bool":
                        self.assertIsInstance(param, params.EnumParam)
                        self.assertEqual(list(param.choices), rec["choices"])
                        self.assertEqual(rec["choices"][value], rec["default"])
                    elif rec["default"] is None:
                        self.assertIsNone(value)            # empty: the engine decides
                        self.assertEqual(param.validate(None), [])   # may stay empty
                    else:
                        self.assertEqual(value, rec["default"])
                    help = param.help.get()
                    engineHelp = toLabels(rec["help"], specs, command)
                    self.assertTrue(help.lower().startswith(engineHelp.lower()),
                                    (help, engineHelp))
                    if rec["default"] is None:
                        self.assertIn("Empty (automatic)", help)
                    self.assertNotRegex(help, r"--[a-z]")   # labels, not command-line flags

    def test_untouched_forms_pass_no_setting(self):
        for cls, specs, command in STAGES:
            prot = self.newProtocol(cls)
            self.assertEqual(settingArgs(prot, specs, command), [], command)
        # the analysis fields and check inputs' particle count: only when changed
        for cls in (ProtCryoStarTrainAtom, ProtCryoStarAnalyze):
            prot = self.newProtocol(cls)
            self.assertEqual(prot._analysisArgs(prot), ["--device", "cpu"], cls.__name__)
        prot = self.newProtocol(ProtCryoStarAnalyze, numClusters=4, seed=3)
        self.assertEqual(prot._analysisArgs(prot), ["--device", "cpu", "--k", 4, "--seed", 3])
        check = self.newProtocol(ProtCryoStarCheckInputs)
        self.assertEqual(check._changedArgs(check, [("maxParticles", "--max-particles")]), [])
        prot = self.newProtocol(ProtCryoStarTrainAtom, zDim=4, precision=1, doInvert=True)
        self.assertEqual(settingArgs(prot, atom.SPECS, ATOM),
                         ["--zdim", "4", "--invert-contrast", "--precision", "fp32"])

    def test_no_downsample_switch_and_empty_box(self):
        for cls in (ProtCryoStarTrainAtom, ProtCryoStarTrainDensity):
            prot = self.newProtocol(cls)
            self.assertFalse(hasattr(prot, "doDownsample"))
            self.assertIsNone(prot.boxSize.get())
        # the low-pass is empty, the engine's automatic value (its wizard shows the number)
        self.assertIsNone(self.newProtocol(ProtCryoStarTrainAtom).lowPass.get())

    def test_advanced_tab_has_fields_at_the_normal_level(self):
        for cls in (ProtCryoStarTrainAtom, ProtCryoStarTrainDensity):
            prot = self.newProtocol(cls)
            sections = {s.label.get(): s for s in prot._definition.iterSections()}
            normal = [name for name, p in sections["Advanced"].iterParams()
                      if p.expertLevel.get() == params.LEVEL_NORMAL]
            self.assertTrue(normal, cls.__name__)
            # the essential settings come first, on the Input tab
            inputNames = [name for name, _ in sections["Input"].iterParams()]
            self.assertIn("Training", inputNames)

    def test_help_text_builder(self):
        text = formHelp(atom.ESSENTIAL[0], ATOM, atom.SPECS)     # box: an automatic default
        self.assertTrue(text.startswith("Working box (Fourier-cropped particles)"))
        self.assertIn("Empty (automatic): the smallest even box whose Nyquist frequency is "
                      "1.25 × the low-pass", text)
        self.assertIn("Allowed: at least 16.", text)
        text = formHelp(atom.ESSENTIAL[3], ATOM, atom.SPECS)     # low-pass
        self.assertTrue(text.startswith("Low-pass of the image loss"))
        self.assertIn("'Consensus map (optional)'", text)     # not --map
        self.assertEqual(toLabels("suggested --low-pass 5 Å; use --lr-schedule", atom.SPECS,
                                  ATOM),
                         "suggested 'Low-pass (Å)' 5 Å; use 'Learning-rate schedule'")


if __name__ == "__main__":
    unittest.main()
