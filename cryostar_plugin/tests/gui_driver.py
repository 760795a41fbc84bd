"""Drive Scipion's real project window over a finished CryoSTAR project, as a user would click.

    python -m cryostar_plugin.tests.gui_driver PROJECT OUT_DIR      (needs DISPLAY and the
                                                                      Scipion variables)

Opens the project window; then, one after the other, the form of every CryoSTAR protocol (the
train-atom form at the Normal and the Advanced expert level), every tab of each, and the
viewer ('analyze results') of the first finished run of each CryoSTAR protocol with each of
its buttons pressed.
After each step it looks at what is on screen:

* a Python exception in a Tk callback, or a Scipion error dialog (``ExceptionDialog``), is a
  problem;
* a form tab with no visible parameter is a problem (an empty tab);
* a viewer button must open something: a figure window, or a dialog that explains what is
  missing (a warning naming the missing program and where the files are); nothing at all is a
  problem (a silent failure).

Every window is saved as a PNG in ``OUT_DIR``; ``OUT_DIR/report.json`` lists the steps,
screenshots, dialog texts and problems.  The process then exits at once (``os._exit``: Tk's
nested loops are not unwound).  :mod:`cryostar_plugin.tests.test_gui` runs it under Xvfb.
"""
import json
import os
import re
import sys
import tkinter as tk
import traceback

STEP_MS = 400          # pause after an action before looking at the screen
EXTERNAL_MS = 6000     # time given to a viewer that runs as a program of its own
REPORT = "report.json"


class Robot:
    """Runs the steps of :meth:`steps` from Tk's event loop and records what it sees."""

    def __init__(self, window, project, outDir):
        self.window, self.project, self.outDir = window, project, outDir
        self.root = window.root
        self.records, self.problems = [], []
        self._steps = None
        os.makedirs(outDir, exist_ok=True)
        # exceptions raised in any Tk callback (ours, pyworkflow's, matplotlib's)
        tk.Tk.report_callback_exception = self._callbackException

    # ------------------------------------------------------------------ plumbing
    def _callbackException(self, tkRoot, exc, val, tb):
        text = "".join(traceback.format_exception(exc, val, tb))
        sys.stderr.write(text)
        self.problems.append(f"exception in a Tk callback: {exc.__name__}: {val}")

    def start(self):
        self._steps = self.steps()
        self.root.after(STEP_MS, self._tick)

    def _tick(self):
        """Advance the steps; a step yields a pause (ms) or a callable that may block in a
        nested event loop (a modal dialog, a window's mainloop): it is called from its own
        event, and the steps go on from within that loop."""
        try:
            action = next(self._steps)
        except StopIteration:
            self._finish()
            return
        except Exception:  # noqa: BLE001  a fault of the driver is a failed run too
            self.problems.append("driver error:\n" + traceback.format_exc())
            self._finish()
            return
        if callable(action):
            self.root.after(STEP_MS, self._tick)
            self.root.after(1, self._guard(action))
        else:
            self.root.after(int(action), self._tick)

    def _guard(self, action):
        def run():
            try:
                action()
            except Exception as err:  # noqa: BLE001
                self.problems.append(f"exception: {type(err).__name__}: {err}")
                traceback.print_exc()
        return run

    def _finish(self):
        with open(os.path.join(self.outDir, REPORT), "w") as f:
            json.dump({"steps": self.records, "problems": self.problems}, f, indent=1)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    # ------------------------------------------------------------------ looking
    def _toplevels(self):
        """Every Toplevel below the main window (forms, dialogs), depth first."""
        out, todo = [], [self.root]
        while todo:
            w = todo.pop()
            for child in w.winfo_children():
                if isinstance(child, tk.Toplevel):
                    out.append(child)
                todo.append(child)
        return out

    def _dialogs(self):
        from pyworkflow.gui.dialog import Dialog
        return [w for w in self._toplevels() if isinstance(w, Dialog) and w.winfo_exists()]

    def shot(self, widget, name):
        """Save ``widget``'s window as ``OUT/name.png``; return the file name."""
        from PIL import ImageGrab

        top = widget.winfo_toplevel()
        top.lift()
        top.update()
        x, y = top.winfo_rootx(), top.winfo_rooty()
        w, h = top.winfo_width(), top.winfo_height()
        screen = ImageGrab.grab(xdisplay=os.environ["DISPLAY"])
        box = (max(x, 0), max(y, 0), min(x + w, screen.width), min(y + h, screen.height))
        fname = re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".png"
        screen.crop(box).save(os.path.join(self.outDir, fname))
        return fname

    def shotScreen(self, name):
        """The whole screen (windows of other processes included) as ``OUT/name.png``."""
        from PIL import ImageGrab
        fname = re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".png"
        ImageGrab.grab(xdisplay=os.environ["DISPLAY"]).save(os.path.join(self.outDir, fname))
        return fname

    def _closeDialogs(self, step):
        """Record and close the dialogs on screen; error dialogs are problems."""
        from pyworkflow.gui.dialog import ExceptionDialog, MessageDialog
        for d in self._dialogs():
            kind = "error" if isinstance(d, ExceptionDialog) else "message"
            text = getattr(d, "msg", "") if isinstance(d, MessageDialog) else ""
            entry = {"title": d.title(), "kind": kind, "text": str(text),
                     "icon": os.path.basename(str(getattr(d, "iconPath", "")))}
            entry["screenshot"] = self.shot(d, f"{step}_dialog")
            step_rec = self.records[-1]
            step_rec.setdefault("dialogs", []).append(entry)
            if kind == "error":
                self.problems.append(f"{step}: error dialog '{d.title()}': {text}")
            elif not str(text).strip():
                self.problems.append(f"{step}: a dialog '{d.title()}' with no text")
            d.destroy()

    def _closeFigures(self, step):
        import matplotlib.pyplot as plt
        shots = []
        numbers = plt.get_fignums()
        for i, n in enumerate(numbers):
            fig = plt.figure(n)
            name = step if len(numbers) == 1 else f"{step}_{i + 1}"
            shots.append(self.shot(fig.canvas.manager.window, name))
            plt.close(fig)
        return shots

    def record(self, step, **info):
        self.records.append(dict(step=step, **info))

    # ------------------------------------------------------------------ forms
    def _shown(self, form, name, param):
        """Whether the parameter's row is on screen (a group: its frame and one of its rows)."""
        from pyworkflow.gui.form import GroupWidget, ParamWidget
        from pyworkflow.protocol import Group
        w = form.widgetDict.get(name)
        if not isinstance(w, ParamWidget):
            return False
        if isinstance(w, GroupWidget) or isinstance(param, Group):
            return w.content.winfo_manager() == "grid" and any(
                self._shown(form, n, p) for n, p in param.iterParams())
        return "grid" in (w.label.winfo_manager(), w.content.winfo_manager())

    def _emptyTabs(self, form):
        """Labels of the form's tabs whose parameters are all hidden."""
        return [section.section.getLabel() for section in form._sections
                if not any(self._shown(form, n, p) for n, p in section.section.iterParams())]

    def _tabShots(self, form, prefix):
        """A screenshot of every tab of ``form`` (each selected in turn)."""
        from tkinter import ttk
        books = [w for w in _descendants(form.root) if isinstance(w, ttk.Notebook)]
        shots = []
        for book in books[:1]:
            for i, tab in enumerate(book.tabs()):
                book.select(tab)
                form.root.update()
                label = book.tab(tab, "text")
                shots.append(self.shot(form.root, f"{prefix}_tab{i}_{label}"))
        return shots

    def formSteps(self, cls, level=None):
        """Open a new protocol's form (as the protocol tree does), optionally switch the expert
        level by clicking its radio button, check and photograph every tab, close it."""
        from pyworkflow.gui.form import FormWindow
        from pyworkflow.utils import Message
        step = f"form_{cls.__name__}" + (f"_{level}" if level else "")
        prot = self.project.newProtocol(cls)
        form = FormWindow(Message.TITLE_NAME_RUN + prot.getClassName(), prot,
                          lambda *a, **k: None, self.window)
        form.adjustSize()
        form.root.deiconify()
        yield STEP_MS
        if level:
            buttons = [w for w in _descendants(form.root)
                       if isinstance(w, tk.Radiobutton) and w.cget("text") == level]
            if not buttons:
                self.problems.append(f"{step}: no '{level}' expert-level button")
            for b in buttons:
                b.invoke()
            yield STEP_MS
        empty = self._emptyTabs(form)
        self.record(step, title=form.root.title(), screenshots=self._tabShots(form, step),
                    empty_tabs=empty)
        for label in empty:
            self.problems.append(f"{step}: tab '{label}' is empty")
        self._closeDialogs(step)
        form.root.destroy()
        yield STEP_MS

    # ------------------------------------------------------------------ viewers
    def viewerSteps(self, prot):
        """Open the run's viewer as 'Analyze results' does and press each of its buttons."""
        import pwem
        from pyworkflow.gui.form import ParamWidget
        from pyworkflow.viewer import DESKTOP_TKINTER
        viewers = pwem.Domain.findViewers(prot, DESKTOP_TKINTER)
        base = f"viewer_{prot.getClassName()}"
        if not viewers:
            yield from self.outputViewerSteps(prot, base)
            return
        viewer = viewers[0](project=self.project, protocol=prot, parent=self.window)
        yield lambda: viewer.visualize(prot, windows=self.window)   # blocks in its mainloop
        form = viewer.formWindow
        empty = self._emptyTabs(form)
        self.record(base, title=form.root.title(), screenshots=self._tabShots(form, base),
                    empty_tabs=empty)
        for label in empty:
            self.problems.append(f"{base}: tab '{label}' is empty")
        for name in viewer._getVisualizeDict():
            widget = form.widgetDict.get(name)
            step = f"{base}_{name}"
            self.record(step)
            if not isinstance(widget, ParamWidget):
                self.problems.append(f"{step}: the button is not on the form")
                continue
            before = {str(w) for w in self._toplevels()}
            yield widget._visualizeVar          # what the eye button calls; may block
            yield STEP_MS
            figures = self._closeFigures(step)
            windows = self._newWindows(before)   # e.g. a text viewer
            figures += [self.shot(w, f"{step}_window{i + 1}") for i, w in enumerate(windows)]
            for w in windows:
                w.destroy()
            self.records[-1]["screenshots"] = figures
            self._closeDialogs(step)
            if not figures and not self.records[-1].get("dialogs"):
                self.problems.append(f"{step}: nothing appeared (silent failure)")
        self._closeDialogs(base)
        form.root.destroy()
        yield STEP_MS

    def _newWindows(self, before):
        """Toplevels (not dialogs) that appeared since ``before`` (a set of widget names)."""
        from pyworkflow.gui.dialog import Dialog
        return [w for w in self._toplevels() if str(w) not in before
                and not isinstance(w, Dialog) and w.winfo_exists()]

    def outputViewerSteps(self, prot, base):
        """'Analyze results' on a run without a viewer of its own: Scipion opens the first
        viewer of each output; something must appear."""
        self.record(base, note="no viewer of its own: Scipion's viewers of its outputs")
        before = {str(w) for w in self._toplevels()}
        view = self.window.getViewWidget()
        children = set(_children())
        yield lambda: view._analyzeResults(prot, None)
        yield STEP_MS
        figures = self._closeFigures(base)
        windows = self._newWindows(before)
        shots = figures + [self.shot(w, f"{base}_window{i + 1}") for i, w in enumerate(windows)]
        launched = [pid for pid in _children() if pid not in children]
        if launched:            # a viewer program of its own (e.g. Scipion's metadata viewer)
            yield EXTERNAL_MS
            alive = [pid for pid in launched if _alive(pid)]
            self.records[-1]["programs"] = [_cmdline(pid) for pid in launched]
            if alive:
                shots.append(self.shotScreen(f"{base}_screen"))
            else:
                self.problems.append(f"{base}: the viewer program(s) exited at once: "
                                     f"{self.records[-1]['programs']}")
            for pid in alive:
                os.kill(pid, 15)
        self.records[-1]["screenshots"] = shots
        self._closeDialogs(base)
        for w in windows:
            w.destroy()
        if not shots and not self.records[-1].get("dialogs"):
            self.problems.append(f"{base}: 'Analyze results' showed nothing (silent failure)")
        yield STEP_MS

    # ------------------------------------------------------------------ the run
    def steps(self):
        import pwem
        yield 1500
        self.record("project", title=self.root.title(), screenshots=[self.shot(self.root,
                                                                               "project")])
        self._closeDialogs("project")
        classes = sorted((c for c in pwem.Domain.getProtocols().values()
                          if c.__module__.startswith("cryostar_plugin.") and not c.isBase()),
                         key=lambda c: c.__name__)
        if not classes:
            self.problems.append("no CryoSTAR protocol is registered")
        for cls in classes:
            if cls.__name__ == "ProtCryoStarTrainAtom":
                yield from self.formSteps(cls, "Normal")
                yield from self.formSteps(cls, "Advanced")
            else:
                yield from self.formSteps(cls)
        first = {}              # the first finished run of each CryoSTAR protocol
        for prot in sorted(self.project.getRuns(), key=lambda p: p.getObjId()):
            if prot.getClassName().startswith("ProtCryoStar") and prot.isFinished():
                first.setdefault(prot.getClassName(), prot)
        for prot in first.values():
            yield from self.viewerSteps(prot)


def _children():
    """Process ids whose parent is this process (programs a viewer launched)."""
    me, out = str(os.getpid()), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                out.append(int(entry))
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:300]
    except OSError:
        return f"pid {pid}"


def _descendants(widget):
    out, todo = [], [widget]
    while todo:
        w = todo.pop()
        out.append(w)
        todo.extend(w.winfo_children())
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    projectName, outDir = argv[0], os.path.abspath(argv[1])
    from pyworkflow.gui.project import ProjectWindow
    from pyworkflow.project import Manager

    path = Manager().getProjectPath(projectName)
    os.chdir(path)
    window = ProjectWindow(path)
    robot = Robot(window, window.project, outDir)
    robot.start()
    window.show()


if __name__ == "__main__":
    main()
