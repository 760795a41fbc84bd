"""The README's claims stay true: its numbers are the engine's, its commands parse, its links
exist, and it stays a page a newcomer reads in ten minutes.

Each check reads the claim out of README.rst (or docs/) and compares it with the code that
decides it, so editing either side alone fails here.
"""
import ast
import importlib.util
import inspect
import re
import shlex

import pytest

from cryostar_engine.atom.config import AtomConfig
from cryostar_engine.atom.inputs import default_box
from cryostar_engine.cli import COMMANDS, build_parser
from cryostar_engine.io import read_particles
from cryostar_engine.lowpass import NO_MAP_LOW_PASS_A

from conftest import ADK_STAR, REPO

README = REPO / "README.rst"
DOCS = REPO / "docs"
MAX_LINES = 200
MACHINE_PATH = re.compile(r"(?<![\w.])/(work|tmp|home|path/to)/")


def readme():
    return README.read_text(encoding="utf-8")


def section(text, title):
    """The body of the RST section ``title`` (up to the next section title)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title) + 2
    end = next((i - 1 for i in range(start + 1, len(lines))
                if re.fullmatch(r"=+", lines[i]) and lines[i - 1].strip()), len(lines))
    return "\n".join(lines[start:end])


def quick_start_commands():
    """The quick start's literal block as argv lists (continuation lines joined)."""
    body = section(readme(), "Quick start: five commands")
    block = body.split("::\n", 1)[1]
    text, commands = "", []
    for line in block.splitlines():
        if line and not line.startswith(" "):
            break
        text += line.strip().rstrip("\\") + " "
        if line.strip() and not line.rstrip().endswith("\\"):
            commands.append(shlex.split(text))
            text = ""
    return commands


def test_readme_is_short():
    n = len(readme().splitlines())
    assert n <= MAX_LINES, f"README.rst has {n} lines; move detail to docs/ (≤ {MAX_LINES})"


def _bundled_default_run():
    """What train-atom without --box and --low-pass resolves on the bundled set (with its map)."""
    from cryostar_engine.atom.inputs import load_atom_inputs
    from conftest import ADK_MAP, ADK_REF
    return load_atom_inputs(AtomConfig(particles=str(ADK_STAR), model=str(ADK_REF),
                                       map=str(ADK_MAP), out="unused"))


def test_default_low_pass_in_readme_is_the_engines():
    text = readme()
    inputs = _bundled_default_run()
    start = re.search(r"the loss band widens from (\d+) Å to the final low-pass", text)
    quick = re.search(r"at least 2\.5 pixels: (\d+(?:\.\d+)?) Å here; (\d+) Å without", text)
    doctor = re.search(r"low-pass (\d+(?:\.\d+)?) Å\s+\(auto", text)
    assert start and quick and doctor, "README no longer states the default low-pass"
    assert float(start.group(1)) == AtomConfig().low_pass_start_A, start.group(0)
    assert float(quick.group(1)) == inputs.low_pass_A, (quick.group(0), inputs.low_pass_A)
    assert float(quick.group(2)) == NO_MAP_LOW_PASS_A, quick.group(0)
    assert float(doctor.group(1)) == inputs.low_pass_A, (doctor.group(0), inputs.low_pass_A)


def test_default_box_in_readme_is_the_engines():
    text = readme()
    box = _bundled_default_run().dataset.box
    quick = re.search(r"\((\d+) px here\)", text)
    doctor = re.search(r"Box\s+(\d+) px \(default for the low-pass\)", text)
    assert quick and doctor, "README no longer states the bundled set's default box"
    assert int(quick.group(1)) == box, (quick.group(0), box)
    assert int(doctor.group(1)) == box, (doctor.group(0), box)


def test_box_rule_in_readme_is_the_engines():
    """'smallest even box whose Nyquist frequency is 1.25 × the low-pass, at least 24 px and at
    most the particles' box' — each number of the sentence against default_box."""
    rule = re.search(r"smallest even box\s+whose Nyquist frequency is ([\d.]+) × the low-pass,"
                     r"\s+at least (\d+) px and at most the particles'\s+box", readme())
    assert rule, "README no longer states the --box rule"
    factor, floor = float(rule.group(1)), int(rule.group(2))
    assert inspect.signature(default_box).parameters["oversampling"].default == factor
    assert default_box(1000, 1.0, 1000.0) == floor                 # coarse low-pass: the floor
    assert default_box(1000, 1.0, 25.0) == 100                    # 2·1.25·1000/25 = 100 px
    assert default_box(1000, 1.0, 2500 / 101) == 108              # 101 px → 102 = 2·3·17 → 108
    assert "prime factors ≤ 7" in readme()
    assert default_box(40, 1.0, 1.0) == 40                         # never above the particles'
    # Nyquist of the chosen box (in 1/Å) reaches factor × the low-pass frequency
    meta = read_particles(ADK_STAR)
    low_pass = _bundled_default_run().low_pass_A
    box = default_box(meta.box, meta.apix, low_pass)
    nyquist = box / (2 * meta.box * meta.apix)
    assert nyquist >= factor / low_pass - 1e-12 and box % 2 == 0


def test_quick_start_commands_exist_and_parse():
    commands = quick_start_commands()
    names = [argv[1] for argv in commands]
    assert names == ["check-inputs", "train-atom", "analyze", "train-density", "export-subset"]
    parser = build_parser()
    for argv in commands:
        assert argv[0] == "cryostar-engine", argv
        assert argv[1] in COMMANDS, argv[1]
        try:
            parser.parse_args(argv[1:])
        except SystemExit as exc:          # argparse's way of refusing a flag
            pytest.fail(f"README quick start: {' '.join(argv)} does not parse ({exc})")
        for arg in argv:
            if arg.startswith("data/"):
                assert (REPO / arg).exists(), f"README quick start names missing {arg}"


def _demo_defaults():
    """Defaults of ``python -m cryostar_plugin.demo`` (read from its source: importing the
    plugin would import Scipion)."""
    tree = ast.parse((REPO / "cryostar_plugin" / "demo.py").read_text(encoding="utf-8"))
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            kw = {k.arg: k.value for k in node.keywords}
            if "default" in kw and isinstance(kw["default"], ast.Constant):
                out[node.args[0].value] = kw["default"].value
    return out


def test_quick_start_runs_what_the_demo_runs():
    """The quick start is the demo's chain on the command line: same lengths and widths."""
    args = {a[1]: build_parser().parse_args(a[1:]) for a in quick_start_commands()}
    demo = _demo_defaults()
    src = (REPO / "cryostar_plugin" / "demo.py").read_text(encoding="utf-8")
    assert args["train-atom"].epochs == demo["--epochs"]
    assert args["train-density"].epochs == demo["--density-epochs"]
    assert args["train-density"].hidden == demo["--density-width"]
    assert f"numClusters={args['analyze'].k}" in src


def test_demo_figures_are_in_one_marked_place():
    """The demo's time and correlation appear once, on the line after the marker comment."""
    lines = readme().splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith(".. The demo's time")]
    assert len(marks) == 1, "README: one marker comment above the demo's figures"
    line = lines[marks[0] + 2]
    figures = re.search(r"about (\d+(?:\.\d+)?) min .*\\\|correlation\\\| (\d+(?:\.\d+)?)", line)
    assert figures, f"README: the marked line lost the demo's figures: {line!r}"
    for path in [README, *DOCS.glob("*.rst")]:
        others = [i for i, ln in enumerate(path.read_text(encoding="utf-8").splitlines())
                  if f"\\|correlation\\| {figures.group(2)}" in ln
                  and not (path == README and i == marks[0] + 2)]
        assert not others, f"{path.name}: demo correlation repeated at lines {others}"


def test_referenced_docs_exist():
    text = readme()
    named = set(re.findall(r"docs/[\w.-]+\.(?:rst|md)", text))
    assert {"docs/settings.rst", "docs/tutorial.rst", "docs/troubleshooting.rst",
            "docs/scipion.rst", "docs/conventions.rst", "docs/development.rst"} <= named
    for rel in named:
        assert (REPO / rel).is_file(), f"README names {rel}, which does not exist"
    for page in DOCS.glob("*.rst"):
        for target in re.findall(r"<([\w.-]+\.(?:rst|md))>`_", page.read_text(encoding="utf-8")):
            assert (DOCS / target).is_file(), f"{page.name} links {target}, which does not exist"


def test_no_machine_paths():
    pages = [README, REPO / "benchmarks" / "RESULTS.md", *DOCS.glob("*.rst"), *DOCS.glob("*.md")]
    for page in pages:
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            assert not MACHINE_PATH.search(line), f"{page.name}:{n}: machine path: {line.strip()}"


def _settings_table_module():
    spec = importlib.util.spec_from_file_location("make_settings_table",
                                                  DOCS / "make_settings_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_table_is_current():
    module = _settings_table_module()
    committed = (DOCS / "settings_table.rst").read_text(encoding="utf-8")
    assert committed == module.render(), \
        "docs/settings_table.rst is stale: run python docs/make_settings_table.py"


@pytest.mark.parametrize("name", ["README.rst", "tutorial.rst", "conventions.rst", "settings.rst",
                                  "troubleshooting.rst", "scipion.rst", "development.rst"])
def test_rst_renders_without_warnings(name, monkeypatch):
    """setup.py uses README.rst as long_description: it must render cleanly (so must docs/)."""
    core = pytest.importorskip("docutils.core", reason="docutils is not installed")
    path = README if name == "README.rst" else DOCS / name
    monkeypatch.chdir(path.parent)          # for ``.. include::``
    core.publish_string(path.read_text(encoding="utf-8"), source_path=path.name,
                        writer_name="null",
                        settings_overrides={"halt_level": 2, "report_level": 2,
                                            "traceback": False})
