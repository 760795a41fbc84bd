"""Our ChimeraX scripts use only documented commands that also run in ``chimerax --nogui``.

ChimeraX itself is not installable from PyPI, so :func:`check_cxc` knows the syntax of the
commands our ``.cxc`` files use (open, volume, style, cartoon, color, view, coordset, hide/show,
vseries), from the ChimeraX User Guide: arguments, option keywords and their value types, model
specs, files relative to the script's folder (ChimeraX runs a ``.cxc`` from its own folder).
It flags GUI-only commands (``coordset slider``, ``vseries slider``, …), unknown commands and
options, malformed values and quotes, and files that do not exist.  The tests show that it
accepts every script the engine writes and fails on each kind of fault.
"""
import glob
import re
import shlex
from pathlib import Path

import pytest

from cryostar_engine.analysis.chimerax import trajectory_script
from cryostar_engine.density.outputs import chimerax_script

SPEC = re.compile(r"^#\d+(-\d+)?(,\d+(-\d+)?)*(\.\d+)*$")
# a model spec narrowed to chains and residue numbers (``color #2/A:3-7,10``), for ``color``
ATOM_SPEC = re.compile(r"^#\d+(\.\d+)*(/[A-Za-z0-9]+(,[A-Za-z0-9]+)*(:-?\d+(--?\d+)?(,-?\d+(--?\d+)?)*)?)?$")
FRAMES = re.compile(r"^(-?\d+)?(,(-?\d+)?(,-?\d+)?)?$")
COLOURS = {"silver", "gray", "grey", "white", "black", "red", "green", "blue", "yellow", "orange",
           "cyan", "magenta", "tan", "salmon", "cornflowerblue", "gold", "purple", "pink"}
COLOUR_SCHEMES = {"bypolymer", "bychain", "byhetero", "bymodel", "byelement", "byattribute"}
GUI_ONLY = {("coordset", "slider"), ("vseries", "slider"), ("mseries", "slider"), ("ui",),
            ("tool",), ("toolshed",)}


def _bool(v):
    return v.lower() in ("true", "false", "1", "0", "t", "f")


def _int(v):
    return re.fullmatch(r"-?\d+", v) is not None


def _float(v):
    return re.fullmatch(r"-?(\d+\.?\d*|\.\d+)([eE]-?\d+)?", v) is not None


def _triple(v):
    parts = v.split(",")
    return len(parts) == 3 and all(_float(p) for p in parts)


def _unit(v):
    return _float(v) and 0.0 <= float(v) <= 1.0


def _colour(v):
    return v.lower() in COLOURS or re.fullmatch(r"#[0-9a-fA-F]{6}", v) is not None


# command → (positional checker, {option keyword: value checker}); a checker returns an error or None
OPTIONS = {
    "open": {"format": str.isidentifier, "coordsets": _bool, "vseries": _bool, "name": bool},
    "volume": {"style": lambda v: v in ("surface", "mesh", "image"), "transparency": _unit,
               "color": _colour, "level": _float, "originIndex": _triple, "origin": _triple,
               "step": _int},
    "style": {},
    "cartoon": {},
    "color": {},
    "view": {},
    "coordset": {"holdSteady": bool, "pauseFrames": _int, "loop": _int, "bounce": _bool,
                 "computeSs": _bool},
    "hide": {"target": bool},
    "show": {"target": bool},
    "vseries play": {"loop": _bool, "direction": lambda v: v in ("forward", "backward", "oscillate"),
                     "pauseFrames": _int, "maxFrameRate": _float, "normalize": _bool},
    "vseries stop": {},
}
TARGETS = {"atoms", "bonds", "cartoons", "ribbons", "surfaces", "models", "pseudobonds"}


def _positionals(cmd, args, base: Path | None):
    """Check a command's positional arguments; return an error or None."""
    if cmd == "open":
        if not args:
            return "open needs a file name"
        for name in args:
            if base is not None and not glob.glob(str(base / name)):
                return f"open: no file matches {name!r} next to the script"
        return None
    need_spec = {"volume", "style", "coordset", "vseries play", "vseries stop"}
    if cmd in need_spec and (not args or not SPEC.match(args[0])):
        return f"{cmd} needs a model spec such as #1 first, got {args[:1]}"
    if args and args[0].startswith("#") and not SPEC.match(args[0]) and cmd != "color":
        return f"{cmd}: malformed model spec {args[0]!r}"
    rest = args[1:] if args and (SPEC.match(args[0]) or (cmd == "color" and ATOM_SPEC.match(args[0]))) else args
    if cmd == "volume":
        return None if all(a in ("show", "hide") for a in rest) else f"volume: unexpected {rest}"
    if cmd == "style":
        return None if rest in (["stick"], ["ball"], ["sphere"]) else f"style: expected stick|ball|sphere, got {rest}"
    if cmd in ("cartoon", "view", "vseries play", "vseries stop"):
        return None if not rest else f"{cmd}: unexpected {rest}"
    if cmd == "color":
        if not args or not (SPEC.match(args[0]) or ATOM_SPEC.match(args[0])):
            return f"color needs a model spec first, got {args[:1]}"
        ok = len(rest) == 1 and (rest[0] in COLOUR_SCHEMES or _colour(rest[0]))
        return None if ok else f"color: expected one colour or scheme, got {rest}"
    if cmd == "coordset":
        return None if len(rest) == 1 and FRAMES.match(rest[0]) else f"coordset: bad frames {rest}"
    if cmd in ("hide", "show"):
        return None if all(a in TARGETS for a in rest) else f"{cmd}: unknown target in {rest}"
    return None


def _n_positional(cmd, words, options) -> int:
    """How many leading words are positional arguments (the rest are ``keyword value`` pairs)."""
    fixed = {"coordset": 2, "style": 2, "color": 2, "vseries play": 1, "vseries stop": 1}
    if cmd in fixed:
        return min(fixed[cmd], len(words))
    if cmd == "open":
        return next((i for i, w in enumerate(words) if w in options), len(words))
    n = 1 if words and words[0].startswith("#") else 0
    extra = {"volume": {"show", "hide"}, "hide": TARGETS, "show": TARGETS}.get(cmd, set())
    while n < len(words) and words[n] in extra:
        n += 1
    return n


def check_command(words: list[str], base: Path | None) -> str | None:
    """One command (already split into words) → an error message, or None."""
    head = words[0]
    for gui in GUI_ONLY:
        if tuple(words[:len(gui)]) == gui:
            return f"{' '.join(gui)} is GUI-only: it stops a script run with chimerax --nogui"
    cmd = " ".join(words[:2]) if head == "vseries" else head
    if cmd not in OPTIONS:
        return f"unknown or unsupported command {cmd!r}"
    words = words[2:] if head == "vseries" else words[1:]
    options = OPTIONS[cmd]
    n = _n_positional(cmd, words, options)
    positional, rest = words[:n], words[n:]
    error = _positionals(cmd, positional, base)
    if error:
        return error
    for key in rest[::2]:
        if key not in options:
            return f"{cmd}: unknown option {key!r} (known: {', '.join(sorted(options)) or 'none'})"
    if len(rest) % 2:
        return f"{cmd}: option {rest[-1]!r} has no value"
    for key, value in zip(rest[::2], rest[1::2]):
        if not options[key](value):
            return f"{cmd}: bad value {value!r} for {key}"
    return None


def check_cxc(text: str, base: Path | None = None) -> list[str]:
    """Problems of a ``.cxc`` script as ``"line N: message"`` (empty when it is fine)."""
    problems = []
    for n, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            commands = [shlex.split(part) for part in stripped.split(";")]
        except ValueError as err:
            problems.append(f"line {n}: malformed ({err})")
            continue
        for words in commands:
            error = check_command(words, base) if words else "empty command"
            if error:
                problems.append(f"line {n}: {error}")
    return problems


def check_cxc_file(path) -> list[str]:
    path = Path(path)
    return check_cxc(path.read_text(), base=path.parent)


# -- the engine's scripts pass ----------------------------------------------------------------

def test_trajectory_scripts_pass(tmp_path):
    (tmp_path / "pca_1.pdb").write_text("END\n")
    (tmp_path / "my map.mrc").write_bytes(b"")
    for map_path in (None, tmp_path / "my map.mrc"):
        script = tmp_path / "pca_1.cxc"
        script.write_text(trajectory_script("pca_1.pdb", 10, "PC1", map_path))
        assert check_cxc_file(script) == []


def test_volume_series_script_passes(tmp_path):
    series = {name: [f"vol_{name}_{i:03d}.mrc" for i in range(3)] for name in ("kmeans", "pca_1")}
    for files in series.values():
        for f in files:
            (tmp_path / f).write_bytes(b"")
    script = tmp_path / "volumes.cxc"
    script.write_text(chimerax_script(series, "/data/consensus map.mrc"))
    assert check_cxc_file(script) == []
    cmds = [ln for ln in script.read_text().splitlines() if not ln.startswith("#")]
    assert cmds == ["open vol_kmeans_00*.mrc vseries true", "open vol_pca_1_00*.mrc vseries true",
                    "hide #2 models", "view"]           # one series shown at a time


# -- and the checker fails on each fault ------------------------------------------------------

GOOD = "open model.pdb coordsets true\nshow #1 atoms\ncoordset #1 1,10 pauseFrames 10 loop 5 bounce true\n"


@pytest.mark.parametrize("bad, message", [
    ("coordset slider #1", "coordset slider is GUI-only"),
    ("vseries slider #1", "vseries slider is GUI-only"),
    ("coordset #1 1,10 pauseFrame 10", "unknown option 'pauseFrame'"),
    ("coordset #1 1,10 bounce maybe", "bad value 'maybe' for bounce"),
    ("coordset #1 1-10", "bad frames"),
    ("coordset #1 1,10; 10", "unknown or unsupported command '10'"),
    ("open model.pdb coordset true", "no file matches 'coordset'"),
    ("open missing.pdb", "no file matches 'missing.pdb'"),
    ('open "model.pdb', "malformed"),
    ("volume 1 style surface", "needs a model spec"),
    ("volume #1 style surfaces", "bad value 'surfaces' for style"),
    ("volume #1 transparency 1.5", "bad value '1.5' for transparency"),
    ("hide #2-4 model", "unknown option 'model'"),
    ("color #1 bypolymers", "expected one colour or scheme"),
    ("color #1/A:3-x #ff0000", "color needs a model spec"),
    ("color #1/A:3-7 #ff00", "expected one colour or scheme"),
    ("vseries play #1 loop", "has no value"),
    ("movie record", "unknown or unsupported command 'movie'"),
])
def test_checker_flags_gui_only_commands_and_malformed_lines(tmp_path, bad, message):
    (tmp_path / "model.pdb").write_text("END\n")
    script = tmp_path / "s.cxc"
    script.write_text(GOOD)
    assert check_cxc_file(script) == []
    script.write_text(GOOD + bad + "\n")
    problems = check_cxc_file(script)
    assert len(problems) == 1 and problems[0].startswith("line 4: ") and message in problems[0], problems


def test_old_scripts_with_the_slider_fail():
    """The scripts before this change ended with ``coordset slider #2``: the checker stops them."""
    old = 'open "/x/pca_1.pdb" coordsets true\ncoordset #2 1,10 pauseFrames 10 loop 5 bounce true\ncoordset slider #2\n'
    assert check_cxc(old) == ["line 3: coordset slider is GUI-only: it stops a script run with "
                              "chimerax --nogui"]
