"""The settings of both training stages come from one place (``cryostar_engine.settings``).

* ``--settings-json`` lists every flag of the command once, with the defaults the command
  really uses, and no test hook;
* every range and choice is checked, through the real CLI, before any file is read or the run
  folder exists; each check is also shown to be what refuses the value (with the bound removed
  from a copy of the metadata, the same value passes);
* a config of the other stage is refused in one line wherever a config is read.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from cryostar_engine.atom.config import AtomConfig
from cryostar_engine.cli import build_parser, main
from cryostar_engine.commands import train_density as train_density_cmd
from cryostar_engine.commands._dataclass_args import dataclass_from_args
from cryostar_engine.density.config import DensityConfig, DensityRunOptions
from cryostar_engine.errors import InputError
from cryostar_engine.settings import flag_of, user_fields, validate_settings
from cryostar_engine.train import write_json

from conftest import ADK_REF, ADK_STAR

COMMON = ("batch", "epochs", "lr", "seed", "device", "threads", "precision", "compile", "box",
          "max_minutes", "keep_checkpoints", "resume", "overwrite", "particles", "datadir", "out")
TEST_HOOKS = {"stop_after_steps", "debug_nan_at_step", "debug_rotation", "debug_ctf_sign",
              "debug_stop_after_steps"}
NOT_SETTINGS = {"-h", "--help", "--config", "--settings-json"}


def _settings(command, capsys) -> dict:
    assert main([command, "--settings-json"]) == 0        # no other flag needed
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "cryostar-settings/1" and doc["command"] == command
    assert doc["engine_version"]
    return doc


def _subparser(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[command]


def _defaults_from_cli(command) -> dict:
    """The config that the command builds when no setting flag is given (paths aside)."""
    args = build_parser().parse_args([command])
    if command == "train-atom":
        cfg = dataclass_from_args(AtomConfig, args, {"particles": "p", "model": "m", "out": "o"})
        return dataclasses.asdict(cfg)
    args.particles, args.z_path, args.config = "p", "z", None
    run = DensityRunOptions(out="o")
    return {**dataclasses.asdict(train_density_cmd._config(args, run)), **dataclasses.asdict(run)}


@pytest.mark.parametrize("command", ["train-atom", "train-density"])
def test_settings_json_lists_every_flag_once_with_its_default(command, capsys):
    doc = _settings(command, capsys)
    flags = [s["flag"] for s in doc["settings"]]
    assert len(flags) == len(set(flags))
    parser_flags = {o for a in _subparser(command)._actions for o in a.option_strings} - NOT_SETTINGS
    assert set(flags) == parser_flags
    assert not TEST_HOOKS & {s["name"] for s in doc["settings"]}
    used = _defaults_from_cli(command)
    for s in doc["settings"]:
        assert set(s) == {"name", "flag", "type", "unit", "default", "default_text", "choices",
                          "min", "max", "min_inclusive", "max_inclusive", "essential", "help",
                          "words"}
        assert s["help"] and s["unit"] in (None, "Å", "px")
        if s["default_text"] == "required":
            continue
        if s["default"] is None:
            assert s["default_text"] and used[s["name"]] is None, s
            continue
        value = used[s["name"]]
        assert (list(value) if isinstance(value, tuple) else value) == s["default"], s["name"]
        python = {"int": int, "float": float, "str": str, "bool": bool, "int_list": list}[s["type"]]
        assert type(s["default"]) is python, s["name"]
        if s["choices"]:
            assert s["default"] in s["choices"]


def test_the_common_settings_have_one_name_flag_and_type_in_both_stages(capsys):
    atom = {s["name"]: s for s in _settings("train-atom", capsys)["settings"]}
    density = {s["name"]: s for s in _settings("train-density", capsys)["settings"]}
    for name in COMMON:
        a, d = atom[name], density[name]
        assert (a["flag"], a["type"], a["unit"]) == (d["flag"], d["type"], d["unit"]), name
    assert atom["compile"]["choices"] == density["compile"]["choices"] == ["auto", "on", "off"]
    assert atom["device"]["choices"] == density["device"]["choices"]
    assert density["z_path"]["flag"] == "--z" and "batch_size" not in density


# (command, extra flags, the one line) — checked before any input is read or folder made
ATOM_CASES = [
    (["--zdim", "-2"], "--zdim must be ≥ 1, got -2"),
    (["--zdim", "0"], "--zdim must be ≥ 1, got 0"),
    (["--epochs", "0"], "--epochs must be > 0, got 0"),
    (["--batch", "0"], "--batch must be ≥ 1, got 0"),
    (["--lr", "-1"], "--lr must be > 0, got -1"),
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be ≥ 1, got 0"),
    (["--keep-checkpoints", "0"], "--keep-checkpoints must be ≥ 1, got 0"),
    (["--micro-batches", "0"], "--micro-batches must be ≥ 1, got 0"),
    (["--max-minutes", "-1"], "--max-minutes must be > 0, got -1"),
    (["--en-keep-ratio", "1.5"], "--en-keep-ratio must lie in (0, 1], got 1.5"),
    (["--en-keep-ratio", "0"], "--en-keep-ratio must lie in (0, 1], got 0"),
    (["--mask-radius", "0"], "--mask-radius must lie in (0, 1], got 0"),
    (["--bead-sigma", "0"], "--bead-sigma must be > 0, got 0"),
    (["--box", "33"], "--box must be an even number of pixels, got 33"),
    (["--box", "8"], "--box must be ≥ 16, got 8"),
    (["--threads", "0"], "--threads must be ≥ 1, got 0"),
    (["--weight-decay", "-0.1"], "--weight-decay must be ≥ 0, got -0.1"),
    (["--kl-beta-max", "-1"], "--kl-beta-max must be ≥ 0, got -1"),
    (["--kl-free-bits", "-1"], "--kl-free-bits must be ≥ 0, got -1"),
    (["--kl-warmup-images", "-5"], "--kl-warmup-images must be ≥ 0, got -5"),
    (["--en-cutoff", "0"], "--en-cutoff must be > 0, got 0"),
    (["--clash-min", "-4"], "--clash-min must be > 0, got -4"),
    (["--low-pass", "0"], "--low-pass must be > 0, got 0"),
    (["--apix", "-1.2"], "--apix must be > 0, got -1.2"),
    (["--encoder-hidden", "64", "0"], "--encoder-hidden must be ≥ 1 each, got 64 0"),
    (["--lr-final-fraction", "2"], "--lr-final-fraction must lie in [0, 1], got 2"),
    (["--eval-every-epochs", "0"], "--eval-every-epochs must be > 0, got 0"),
    (["--seed", "-1"], "--seed must be ≥ 0, got -1"),
    (["--precision", "x"], "--precision 'x': choose one of auto, fp32, bf16, fp16"),
    (["--compile", "yes"], "--compile 'yes': choose one of auto, on, off"),
    (["--device", "gpu"], "--device 'gpu': choose one of auto, cpu, cuda"),
    (["--lr-schedule", "step"], "--lr-schedule 'step': choose one of cosine, constant"),
    (["--bead-centre", "ca"], "--bead-centre 'ca': choose one of residue, backbone, atoms, groups, auto"),
]
DENSITY_CASES = [
    (["--epochs", "0"], "--epochs must be > 0, got 0"),
    (["--keep-checkpoints", "0"], "--keep-checkpoints must be ≥ 1, got 0"),
    (["--max-minutes", "-1"], "--max-minutes must be > 0, got -1"),
    (["--batch", "0"], "--batch must be ≥ 1, got 0"),
    (["--lr", "0"], "--lr must be > 0, got 0"),
    (["--mask-radius", "1.5"], "--mask-radius must lie in (0, 1], got 1.5"),
    (["--box", "4"], "--box must be ≥ 8, got 4"),
    (["--hidden", "0"], "--hidden must be ≥ 1, got 0"),
    (["--residual-layers", "-1"], "--residual-layers must be ≥ 0, got -1"),
    (["--pe-scale", "0"], "--pe-scale must be > 0, got 0"),
    (["--k", "0"], "--k must be ≥ 1, got 0"),
    (["--points", "1"], "--points must be ≥ 2, got 1"),
    (["--f-std", "0"], "--f-std must be > 0, got 0"),
    (["--threads", "0"], "--threads must be ≥ 1, got 0"),
    (["--checkpoint-interval-s", "0"], "--checkpoint-interval-s must be > 0, got 0"),
    (["--guard-interval-steps", "0"], "--guard-interval-steps must be ≥ 1, got 0"),
    (["--precision", "fp16"], "--precision 'fp16': choose one of auto, fp32, bf16"),
    (["--compile", "yes"], "--compile 'yes': choose one of auto, on, off"),
]
CASES = ([("train-atom", *c) for c in ATOM_CASES] + [("train-density", *c) for c in DENSITY_CASES])


def _required(command, tmp_path) -> list:
    """Input flags naming files that do not exist: a check that ran after reading any input
    would report the missing file instead of the option."""
    missing = tmp_path / "missing"
    if command == "train-atom":
        return ["--particles", f"{missing}.star", "--model", f"{missing}.pdb"]
    return ["--particles", f"{missing}.star", "--z", f"{missing}.npy"]


def test_the_matrix_is_large_enough():
    assert len(CASES) >= 25 and len(DENSITY_CASES) >= 10


@pytest.mark.parametrize("command,flags,line", CASES, ids=[f"{c[0]}{' '.join(c[1])}" for c in CASES])
def test_an_out_of_range_option_is_refused_in_one_line_before_anything_is_written(
        command, flags, line, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([command, *_required(command, tmp_path), "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cryostar-engine: error: {line}"]
    assert not out.exists()


def _field(cls, flag):
    return next(f for f in user_fields(cls) if flag_of(f) == flag)


@pytest.mark.parametrize("command,flags,line", CASES, ids=[f"{c[0]}{' '.join(c[1])}" for c in CASES])
def test_each_refusal_comes_from_the_metadata_bound_it_names(command, flags, line, tmp_path):
    """The fault each case guards: the bound (or choice list) is missing.  With it removed from a
    copy of the metadata, the same value passes; with it, the value is refused."""
    cls = AtomConfig if command == "train-atom" else DensityConfig
    f = _field(cls, flags[0])
    args = build_parser().parse_args([command, *flags])
    value = getattr(args, f.name)
    value = tuple(value) if isinstance(value, list) else value
    cfg = cls(particles="p", z_path="z") if cls is DensityConfig else cls()
    object.__setattr__(cfg, f.name, value)          # as if the config had been built unchecked
    with pytest.raises(InputError) as refused:
        validate_settings(cfg)
    assert str(refused.value) == line
    if isinstance(value, float) and not math.isfinite(value):
        return                                       # a type check, not a bound
    relaxed = {**f.metadata, "min": None, "max": None, "choices": None, "even": False}
    validate_settings(cfg, {f.name: relaxed})       # the fault: no exception any more


def test_a_config_file_is_checked_like_the_flags(tmp_path, capsys):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"zdim": -2, "lr": 1e-3}))
    out = tmp_path / "run"
    assert main(["train-atom", *_required("train-atom", tmp_path), "--config", str(settings),
                 "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "cryostar-engine: error: --zdim must be ≥ 1, got -2"
    settings.write_text(json.dumps({"batch_size": 0}))              # a schema-1 name
    assert main(["train-density", *_required("train-density", tmp_path), "--config",
                 str(settings), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "cryostar-engine: error: --batch must be ≥ 1, got 0"
    assert not out.exists()


def test_subprocess_tests_set_the_hooks_through_the_environment(monkeypatch):
    from cryostar_engine.settings import apply_test_hooks
    atom, density = AtomConfig(), DensityConfig(particles="p", z_path="z")
    assert apply_test_hooks(atom) == atom                       # nothing set: unchanged
    monkeypatch.setenv("CRYOSTAR_TEST_STOP_AFTER_STEPS", "6")
    monkeypatch.setenv("CRYOSTAR_TEST_NAN_AT_STEP", "3")
    assert (apply_test_hooks(atom).stop_after_steps, apply_test_hooks(atom).debug_nan_at_step) == (6, 3)
    hooked = apply_test_hooks(density)
    assert (hooked.debug_stop_after_steps, hooked.debug_nan_at_step) == (6, 3)
    monkeypatch.setenv("CRYOSTAR_TEST_STOP_AFTER_STEPS", "six")
    with pytest.raises(InputError, match="CRYOSTAR_TEST_STOP_AFTER_STEPS must be a step number"):
        apply_test_hooks(atom)


@pytest.mark.parametrize("command", ["train-atom", "train-density"])
def test_the_run_folder_must_be_named(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)                   # not the current folder by accident
    assert main([command, *_required(command, tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "cryostar-engine: error: --out is required: the folder of the run"
    assert list(tmp_path.iterdir()) == []


def test_test_hooks_are_not_flags(tmp_path, capsys):
    for command, flag in [("train-atom", "--stop-after-steps"), ("train-density", "--debug-nan-at-step")]:
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, flag, "3"])
    capsys.readouterr()


# -- configs of the other stage ----------------------------------------------------------------

def _atom_run(folder):
    folder.mkdir()
    write_json(folder / "run.json", {"kind": "atom"})
    write_json(folder / "config.json", AtomConfig(particles=str(ADK_STAR), model=str(ADK_REF),
                                                  out=str(folder)).to_json())
    return folder


def _density_run(folder):
    folder.mkdir()
    write_json(folder / "run.json", {"kind": "density"})
    # a saved run's config holds the resolved length and width (here as decided on a GPU)
    write_json(folder / "config.json", DensityConfig(particles=str(ADK_STAR), z_path="z.npy", epochs=20.0,
                                                     hidden=1024, hidden_source="auto: cuda").to_dict())
    return folder


def _refused(argv, capsys, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert "unknown" not in err[0]


def test_a_config_of_the_other_stage_is_refused_in_one_line(tmp_path, capsys):
    atom, density = _atom_run(tmp_path / "atom"), _density_run(tmp_path / "density")
    z = tmp_path / "z.npy"
    np.save(z, np.zeros((3, 8), np.float32))
    stage1 = "config.json is a stage-1 (atom generator) config; pass a train-density"
    stage2 = "config.json is a stage-2 (density generator) config; pass a train-atom"
    _refused(["train-density", "--out", str(atom), "--resume"], capsys, stage1)
    _refused(["train-atom", "--out", str(density), "--resume"], capsys, stage2)
    _refused(["train-density", *_required("train-density", tmp_path), "--out", str(tmp_path / "a"),
              "--config", str(atom / "config.json")], capsys, stage1 + " config")
    _refused(["train-atom", *_required("train-atom", tmp_path), "--out", str(tmp_path / "b"),
              "--config", str(density / "config.json")], capsys, stage2 + " config")
    _refused(["eval-density", "--run", str(atom), "--z", str(z), "--out", str(tmp_path / "c")],
             capsys, stage1 + " run")
    _refused(["eval-atom", "--run", str(density), "--z", str(z), "--out", str(tmp_path / "d.pdb")],
             capsys, stage2 + " run")
    assert not [p for p in tmp_path.iterdir() if p.name in ("a", "b", "c", "d.pdb")]


def test_a_setting_that_cannot_change_on_resume_is_refused_not_ignored(tmp_path, capsys):
    atom, density = _atom_run(tmp_path / "atom"), _density_run(tmp_path / "density")
    before = {p: p.read_bytes() for p in [*atom.iterdir(), *density.iterdir()]}
    _refused(["train-atom", "--out", str(atom), "--resume", "--zdim", "4"], capsys,
             f"--zdim 4 differs from the run being resumed (8 in {atom}/config.json); on --resume "
             "only --epochs, --device, --checkpoint-every, --keep-checkpoints")
    _refused(["train-density", "--out", str(density), "--resume", "--hidden", "64", "--epochs", "30"],
             capsys, "--hidden 64 differs from the run being resumed (1024 in")
    assert {p: p.read_bytes() for p in [*atom.iterdir(), *density.iterdir()]} == before


def test_schema_1_density_configs_still_load():
    old = {**dataclasses.asdict(DensityConfig(particles="p", z_path="z")), "schema_version": 1}
    old.pop("batch")
    old.update(batch_size=32, compile=True, epochs=20)
    old.pop("map")
    cfg = DensityConfig.from_dict(old)
    assert (cfg.batch, cfg.compile, cfg.epochs) == (32, "on", 20)
    saved = cfg.to_dict()
    assert saved["kind"] == "density" and saved["schema_version"] == 4 and "batch_size" not in saved
    assert AtomConfig().to_json()["kind"] == "atom"
    with pytest.raises(InputError, match="newer than this engine"):
        DensityConfig.from_dict({**saved, "schema_version": 99})


def test_a_density_run_with_a_schema_1_config_still_resumes(tmp_path):
    """A run folder written before the rename (``batch_size``, boolean ``compile``, no ``kind``)
    continues with ``--resume`` and is rewritten in the current schema."""
    from cryostar_engine.density import train_density

    z = tmp_path / "z.npy"
    np.save(z, np.random.default_rng(1).standard_normal((384, 2)).astype(np.float32))
    cfg = DensityConfig(particles=str(ADK_STAR), z_path=str(z), box=16, hidden=32, residual_layers=1,
                        epochs=1, batch=64, lr=1e-3, device="cpu", seed=3, n_clusters=2, n_pcs=1,
                        n_pc_points=2, threads=1, debug_stop_after_steps=3)
    run = tmp_path / "run"
    assert train_density(cfg, run)[1] is False
    old = json.loads((run / "config.json").read_text())
    for key in ("kind", "map", "amplitude_contrast", "lr_decay_fraction"):
        old.pop(key)
    old.update(schema_version=1, batch_size=old.pop("batch"), compile=False, epochs=1)
    (run / "config.json").write_text(json.dumps(old))
    assert main(["train-density", "--out", str(run), "--resume"]) == 0
    new = json.loads((run / "config.json").read_text())
    assert (new["kind"], new["schema_version"], new["batch"], new["compile"]) == ("density", 4, 64, "off")
    assert new["lr_decay_fraction"] == 0.0          # it trained at a constant rate, and still does
    assert json.loads((run / "manifest.json").read_text())["images_seen"] == 384
