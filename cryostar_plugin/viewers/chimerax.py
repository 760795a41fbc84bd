"""Opening a ChimeraX script from the viewer, or saying clearly why it cannot be opened.

pwem's :class:`ChimeraView` runs ``<CHIMERA_HOME>/bin/ChimeraX script &`` through the shell;
without ChimeraX that prints ``not found`` on the terminal and the user sees nothing.  Here the
program is looked up first (Scipion's ChimeraX, then ``ChimeraX``/``chimerax`` on PATH) and,
when there is none, the viewer shows a message with the script's path to open by hand.
"""
import os
import shutil

__all__ = ["findChimeraX", "chimeraxView", "missingMessage"]


def _scipionChimeraX():
    """The program pwem would run (``<CHIMERA_HOME>/bin/ChimeraX``), or None."""
    try:
        from pwem.viewers.viewer_chimera import Chimera
        return Chimera.getProgram()
    except Exception:      # a broken chimera plugin must not break our viewer  # noqa: BLE001
        return None


def findChimeraX():
    """``(program, fromScipion)``: an executable ChimeraX, or ``(None, False)``."""
    prog = _scipionChimeraX()
    if prog and os.path.isfile(prog) and os.access(prog, os.X_OK):
        return prog, True
    for name in ("ChimeraX", "chimerax"):
        found = shutil.which(name)
        if found:
            return found, False
    return None, False


def missingMessage(script, what):
    """The text shown when no ChimeraX is found (``what``: e.g. "the k-means centres")."""
    looked = _scipionChimeraX() or "<CHIMERA_HOME>/bin/ChimeraX"
    return (f"ChimeraX is needed to show {what}, and it was not found: Scipion looks for\n"
            f"  {looked}\n"
            "(set CHIMERA_HOME, or install scipion-em-chimera) and for 'chimerax' on PATH.\n\n"
            "The ChimeraX script is ready; open it by hand in ChimeraX (File > Open) or with\n"
            f"  chimerax {script}")


def chimeraxView(viewer, script, what):
    """A view that opens ``script`` in ChimeraX, or a message when it cannot.

    Parameters
    ----------
    viewer : the :class:`~pyworkflow.viewer.Viewer` (its message factories are used).
    script : absolute path of the ``.cxc``.
    what : what the script shows, for the messages.
    """
    from pwem.viewers import ChimeraView
    from pyworkflow.viewer import CommandView

    if not os.path.exists(script):
        return viewer.errorMessage(f"{script} was not found: has the run finished?",
                                   "No ChimeraX script")
    prog, fromScipion = findChimeraX()
    if prog is None:
        return viewer.warnMessage(missingMessage(script, what), "ChimeraX not found")
    if fromScipion:
        return ChimeraView(script)
    return CommandView(f'"{prog}" "{script}" &')
