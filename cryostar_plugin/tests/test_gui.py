"""The real Scipion GUI on the shared finished project, under a virtual display (Xvfb).

:mod:`cryostar_plugin.tests.gui_driver` opens the project window, every CryoSTAR protocol's form
(train atom generator at both expert levels) and every viewer button of the finished runs, in
a separate process (Tk and Scipion's window stay out of the test process).  The test fails on
any exception, any Scipion error dialog, an empty form tab, or a viewer button that shows
nothing.  Screenshots of every window go to ``test-artifacts/gui/`` (see the README).

Skipped, with the reason, only when no X server can be had (no ``Xvfb`` that starts, ``apt-get
install xvfb``; ``.ci/run`` installs it; and no ``DISPLAY``) or this Python has no Tk.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

from cryostar_plugin.tests.shared_project import REPO, SharedChainTest

ARTIFACTS = os.path.join(REPO, "test-artifacts", "gui")
TIMEOUT_S = 240


def _tkMissing():
    try:
        import tkinter  # noqa: F401
    except ImportError as err:
        return f"this Python has no Tk ({err}): apt-get install python3-tk"
    return None


class VirtualDisplay:
    """An Xvfb server on a free display number (``-displayfd``), stopped by :meth:`stop`."""

    def __init__(self, size="1600x1200x24"):
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", "1", "-screen", "0", size, "-nolisten", "tcp"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"Xvfb did not start (it printed {line!r})")
        self.display = f":{line}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _pngIsBlank(path):
    from PIL import Image
    with Image.open(path) as im:
        lo, hi = zip(*im.convert("RGB").getextrema())
    return lo == hi


class _Display:
    """The X server of a session that already has one (``DISPLAY``)."""

    def __init__(self, display):
        self.display = display

    def stop(self):
        pass


def xServer():
    """A virtual display (Xvfb), else the session's ``DISPLAY``; raises SkipTest with the reason
    when neither can be had."""
    if shutil.which("Xvfb"):
        try:
            return VirtualDisplay()
        except (OSError, RuntimeError) as err:
            reason = f"Xvfb could not start: {err}"
    else:
        reason = "Xvfb is not installed (apt-get install xvfb; .ci/run installs it)"
    if os.environ.get("DISPLAY"):
        return _Display(os.environ["DISPLAY"])
    raise unittest.SkipTest(f"no X server can be started: {reason}")


@unittest.skipIf(_tkMissing(), _tkMissing() or "")
class TestCryoStarGui(SharedChainTest):
    @classmethod
    def setUpClass(cls):
        cls.display = xServer()         # before the shared project: skip without building it
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        cls.display.stop()
        super().tearDownClass()

    def test_forms_and_viewers_in_the_project_window(self):
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        env = dict(os.environ, DISPLAY=self.display.display)
        done = subprocess.run(
            [sys.executable, "-m", "cryostar_plugin.tests.gui_driver", self.proj.getName(),
             ARTIFACTS], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        reportPath = os.path.join(ARTIFACTS, "report.json")
        self.assertTrue(os.path.exists(reportPath),
                        f"the GUI driver wrote no report (exit {done.returncode}):\n"
                        f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        with open(reportPath) as f:
            report = json.load(f)
        self.assertEqual(report["problems"], [], "\n".join(report["problems"]))
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        self.assertNotIn("Traceback", done.stderr + done.stdout)   # nothing logged and swallowed

        steps = {s["step"]: s for s in report["steps"]}
        shots = [p for s in report["steps"] for p in s.get("screenshots", [])] + \
            [d["screenshot"] for s in report["steps"] for d in s.get("dialogs", [])]
        for name in ("project", "form_ProtCryoStarTrainAtom_Normal",
                     "form_ProtCryoStarTrainAtom_Advanced", "form_ProtCryoStarCheckInputs",
                     "form_ProtCryoStarAnalyze", "form_ProtCryoStarTrainDensity",
                     "form_ProtCryoStarSubset"):
            self.assertIn(name, steps)
        # every button of every viewer was pressed and showed a figure or an explanation
        for prot in (self.train, self.analyze, self.density, self.subset):
            base = f"viewer_{prot.getClassName()}"
            pressed = [s for s in steps if s.startswith(base + "_do")]
            self.assertGreaterEqual(len(pressed), 7, base)
        scatter = steps[f"viewer_{self.analyze.getClassName()}_doShowPcaScatter"]
        self.assertEqual(len(scatter["screenshots"]), 1)
        gallery = steps[f"viewer_{self.density.getClassName()}_doShowVolumeSlices"]
        self.assertEqual(len(gallery["screenshots"]), 1)
        # the model-map validation: its table window, the overview and a per-point figure
        for name in ("doShowValidationTable", "doShowValidationOverview",
                     "doShowValidationPoint"):
            step = steps[f"viewer_{self.density.getClassName()}_{name}"]
            self.assertEqual(len(step["screenshots"]), 1, name)
            self.assertNotIn("dialogs", step, name)
        # ChimeraX is not installed here: its buttons explain where the script is
        for name in ("doShowVolumeSeries", "doShowValidationChimera"):
            chimera = steps[f"viewer_{self.density.getClassName()}_{name}"]
            if not shutil.which("chimerax") and not shutil.which("ChimeraX"):
                (dialog,) = chimera["dialogs"]
                self.assertIn("ChimeraX", dialog["text"])
                self.assertIn(".cxc", dialog["text"])
        for name in shots:
            path = os.path.join(ARTIFACTS, name)
            self.assertTrue(os.path.exists(path), name)
            self.assertFalse(_pngIsBlank(path), f"{name} is blank")

    def test_the_demos_gui_command_opens_the_project_window(self):
        """The command the demo prints (no scipion-app launcher) shows the project window."""
        from PIL import ImageGrab

        from cryostar_plugin.demo import guiCommand
        cmd = guiCommand(self.proj.getName())
        self.assertIn(" -O -m pyworkflow.apps.pw_project ", cmd)
        log = os.path.join(ARTIFACTS, "gui_command.log")
        os.makedirs(ARTIFACTS, exist_ok=True)
        with open(log, "w") as out:
            proc = subprocess.Popen(["sh", "-c", "exec env " + cmd], stdout=out,
                                    stderr=subprocess.STDOUT,
                                    env=dict(os.environ, DISPLAY=self.display.display))
        try:
            shown = False
            for _ in range(120):                   # up to 60 s on a loaded machine
                time.sleep(0.5)
                if proc.poll() is not None:
                    break
                screen = ImageGrab.grab(xdisplay=self.display.display)
                lo, hi = zip(*screen.convert("RGB").getextrema())
                if lo != hi:                       # something is drawn on the black screen
                    time.sleep(3)                  # let the window finish drawing
                    ImageGrab.grab(xdisplay=self.display.display).save(
                        os.path.join(ARTIFACTS, "gui_command.png"))
                    shown = True
                    break
            running = proc.poll() is None
        finally:
            proc.terminate()
            proc.wait(10)
        with open(log) as f:
            text = f.read()
        self.assertNotIn("No module named", text)
        self.assertTrue(running, f"the GUI command exited:\n{text[-2000:]}")
        self.assertTrue(shown, f"no window appeared in 60 s:\n{text[-2000:]}")


if __name__ == "__main__":
    unittest.main()
