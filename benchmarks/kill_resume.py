"""Kill training with SIGKILL at random points, resume, and compare with an uninterrupted run.

For each stage (1: train-atom, 2: train-density) the script
1. trains once without interruption (CPU, one thread, fixed seed) and keeps the final z (stage 1)
   or the final weights (stage 2);
2. N times: starts the same training in a subprocess and kills it with SIGKILL either at a random
   point of its training (a random stretch of the uninterrupted run's timeline — run folder →
   first checkpoint → … → last checkpoint — and a random time into it, counted from when that
   stretch begins in the killed run, so a slower or faster machine moves nothing), or — every ``--write-every``-th point — in the
   middle of a checkpoint write (the subprocess's ``torch.save`` writes half the file, pauses,
   then finishes: the kill lands while the temporary file is half written);
3. continues the killed run with ``--resume`` (or starts it again when it was killed before its
   run folder existed), and records the largest difference to the uninterrupted result.

Prints a table (one row per kill point) and a summary; ``--markdown`` prints it as Markdown for
benchmarks/RESULTS.md.

Example usage:
  python benchmarks/kill_resume.py                   # 20 kill points per stage, both stages
  python benchmarks/kill_resume.py --kills 3 --stages 1 --seed 1
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
STAR = REPO / "data" / "adk_sim48" / "particles.star"
MODEL = REPO / "data" / "adk_models" / "adk_ref_frame048.pdb"

#: the tiny settings of tests/test_atom_resume.py and tests/test_density_resume.py, lengthened a
#: little so that a kill can land anywhere in training
STAGE_ARGS = {
    1: ["train-atom", "--particles", str(STAR), "--model", str(MODEL), "--epochs", "12",
        "--lr", "1e-3", "--low-pass", "6", "--seed", "3", "--threads", "1",
        "--checkpoint-every", "10", "--box", "32"],
    2: ["train-density", "--particles", str(STAR), "--box", "16", "--hidden", "32",
        "--residual-layers", "1", "--epochs", "8", "--batch", "64", "--lr", "1e-3",
        "--device", "cpu", "--seed", "3", "--threads", "1", "--k", "2", "--pcs", "1",
        "--points", "2"],
}

# The subprocess: run the CLI; with KILL_RESUME_SLOW_SAVE set, torch.save writes the first half
# of each checkpoint, flushes it, waits that many seconds, then writes the rest (a test harness
# around the library call, so that a kill can land inside a checkpoint write).
CHILD = r"""
import io, os, sys, time
import torch
pause = float(os.environ.get("KILL_RESUME_SLOW_SAVE", "0"))
if pause:
    _save = torch.save
    def slow_save(obj, f, *a, **k):
        buf = io.BytesIO()
        _save(obj, buf, *a, **k)
        data = buf.getvalue()
        with open(f, "wb") as out:
            out.write(data[: len(data) // 2]); out.flush(); os.fsync(out.fileno())
            time.sleep(pause)
            out.write(data[len(data) // 2:])
    torch.save = slow_save
from cryostar_engine.cli import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass
class KillPoint:
    stage: int
    index: int
    mode: str            # "random" or "checkpoint write"
    where: str           # when: "<what appeared> + <delay> s" or the checkpoint being written
    at_s: float          # seconds after start
    state: str           # what the kill interrupted
    resumed_from: int | None
    max_diff: float
    ok: bool


def _env(slow_save: float = 0.0) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("CRYOSTAR_TEST_STOP_AFTER_STEPS", None)
    if slow_save:
        env["KILL_RESUME_SLOW_SAVE"] = str(slow_save)
    return env


def _cli(args, env=None) -> subprocess.Popen:
    """The CLI in a subprocess; its stderr goes to a temporary file (a pipe could fill up)."""
    err = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=REPO, env=env or _env(),
                            stdout=subprocess.DEVNULL, stderr=err, text=True)
    proc.errfile = err
    return proc


def _stderr(proc) -> str:
    proc.errfile.seek(0)
    return proc.errfile.read().strip()[-400:]


def _timeline(run: Path) -> list[str]:
    """What has appeared in ``run`` so far: ``"run.json"`` then checkpoint names, in order."""
    seen = ["run.json"] if (run / "run.json").is_file() else []
    folder = run / "checkpoints"
    if seen and folder.is_dir():
        seen += sorted(p.name for p in folder.glob("step_*.pt"))
    return seen


def _run_to_end(args, watch: Path | None = None) -> list[tuple[str, float]]:
    """Run to the end; with ``watch``, return when ``run.json`` and each checkpoint of that run
    folder first appeared, as ``(name, seconds after start)``."""
    proc, t0, events = _cli(args), time.monotonic(), {}
    while watch is not None and proc.poll() is None:
        for name in _timeline(watch):
            events.setdefault(name, time.monotonic() - t0)
        time.sleep(0.01)
    proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {_stderr(proc)}")
    return sorted(events.items(), key=lambda kv: kv[1])


def stage_args(stage: int, out: Path, z_path: Path | None, base=None) -> list[str]:
    """The command line of a stage's run into ``out`` (``base``: other settings than
    :data:`STAGE_ARGS`)."""
    args = list((base or STAGE_ARGS)[stage]) + ["--out", str(out)]
    if stage == 2:
        args += ["--z", str(z_path)]
    return args


def final_result(stage: int, run: Path) -> np.ndarray | dict:
    if stage == 1:
        return np.load(run / "z.npy")
    return torch.load(run / "weights.pt", weights_only=True)["model"]


def max_diff(stage: int, a, b) -> float:
    if stage == 1:
        return float(np.abs(a - b).max())
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def kill_state(run: Path) -> str:
    manifest = run / "manifest.json"
    if not (run / "run.json").is_file():
        return "before the run folder"
    if manifest.is_file() and json.loads(manifest.read_text()).get("status") == "finished":
        return "after the end"
    if _half_written(run / "checkpoints"):
        return "checkpoint half-written"
    if any((run / "checkpoints").glob(".*.tmp")):
        return "checkpoint write begun"
    return "between steps"


def kill_at_random(args, run: Path, after: str, delay_s: float, timeout: float = 600) -> float:
    """Kill ``delay_s`` seconds after ``after`` (``"run.json"`` or a checkpoint's name) appeared in
    ``run``; return the seconds from start to the kill (or to the end, when it finished first)."""
    t_seen = None

    def due() -> bool:
        nonlocal t_seen
        now = time.monotonic()
        if t_seen is None and after in _timeline(run):
            t_seen = now
        return t_seen is not None and now - t_seen >= delay_s
    return _kill_when(_cli(args), args, due, timeout, poll_s=0.005)


def _kill_when(proc: subprocess.Popen, args, due, timeout: float, poll_s: float) -> float:
    """SIGKILL ``proc`` as soon as ``due()`` says so (polled every ``poll_s``); a run that ends
    by itself must succeed.  Returns the seconds from the start to the kill (or the end)."""
    t0 = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - t0 < timeout:
            if due():
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(poll_s)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    _check_exit(proc, args)
    return time.monotonic() - t0


def _check_exit(proc: subprocess.Popen, args) -> None:
    """A run that ended by itself must have succeeded (else the table would lie)."""
    if proc.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"{args[0]} failed by itself ({proc.returncode}): {_stderr(proc)}")


def _half_written(folder: Path) -> set:
    """Names of temporary checkpoint files that hold some bytes (the first half)."""
    if not folder.is_dir():
        return set()
    names = set()
    for p in folder.glob(".*.tmp"):
        try:
            if p.stat().st_size > 0:
                names.add(p.name)
        except FileNotFoundError:       # renamed meanwhile
            pass
    return names


def kill_in_checkpoint_write(args, run: Path, skip: int, timeout: float = 600) -> float:
    """Kill while the (skip+1)-th checkpoint is half written (its temporary file holds the first
    half and the writer pauses for 0.5 s); return the seconds from start to the kill."""
    seen, folder = set(), run / "checkpoints"

    def due() -> bool:
        seen.update(_half_written(folder))
        return len(seen) > skip
    return _kill_when(_cli(args, env=_env(slow_save=0.5)), args, due, timeout, poll_s=0.01)


def resume(stage: int, run: Path, z_path: Path | None, base=None) -> int | None:
    """Continue (or restart) the killed run; return the step resumed from (None: restarted)."""
    from cryostar_engine.train import list_checkpoints

    if not (run / "run.json").is_file():
        _run_to_end(stage_args(stage, run, z_path, base))
        return None
    ckpts = list_checkpoints(run)
    step = int(ckpts[-1].stem.split("_")[1]) if ckpts else 0
    _run_to_end(["train-atom" if stage == 1 else "train-density", "--out", str(run), "--resume"])
    return step


def run_stage(stage: int, kills: int, work: Path, rng: random.Random, write_every: int,
              z_path: Path | None, log) -> list[KillPoint]:
    reference = work / f"stage{stage}_uninterrupted"
    t0 = time.monotonic()
    events = _run_to_end(stage_args(stage, reference, z_path), watch=reference)
    duration = time.monotonic() - t0
    truth = final_result(stage, reference)
    # training segments of the uninterrupted run: run folder → 1st checkpoint → 2nd → … → last
    segments = [(a, tb - ta) for (a, ta), (_, tb) in zip(events, events[1:])]
    log(f"stage {stage}: uninterrupted run {duration:.1f} s, run folder after {events[0][1]:.1f} s, "
        f"{len(events) - 1} checkpoints")
    points = []
    for i in range(kills):
        run = work / f"stage{stage}_kill{i:02d}"
        args = stage_args(stage, run, z_path)
        if write_every and i % write_every == write_every - 1:
            mode, skip = "checkpoint write", rng.randrange(0, 4)
            at = kill_in_checkpoint_write(args, run, skip=skip)
            where = f"writing checkpoint #{skip + 1}"
        else:       # a random segment, a random time into it
            mode = "random"
            after, length = rng.choice(segments)
            delay = rng.uniform(0.0, length)
            at = kill_at_random(args, run, after, delay)
            where = f"{after.replace('.pt', '')} + {delay:.2f} s"
        state = kill_state(run)
        resumed = resume(stage, run, z_path)
        diff = max_diff(stage, truth, final_result(stage, run))
        points.append(KillPoint(stage, i, mode, where, at, state, resumed, diff, diff <= 1e-5))
        log(f"  kill {i:2d} ({mode}: {where}) at {at:5.1f} s, {state}; resumed from step "
            f"{resumed if resumed is not None else '— (restarted)'}: max |diff| {diff:.2e}")
    return points


def table(points: list[KillPoint], markdown: bool) -> str:
    head = ["stage", "kill", "how", "when", "at (s)", "interrupted", "resumed from step",
            "max abs diff", "equal"]
    rows = [[str(p.stage), str(p.index), p.mode, p.where, f"{p.at_s:.1f}", p.state,
             "restarted" if p.resumed_from is None else str(p.resumed_from), f"{p.max_diff:.1e}",
             "yes" if p.ok else "NO"] for p in points]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*r) for r in rows])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20, help="kill points per stage (default 20)")
    p.add_argument("--stages", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    p.add_argument("--write-every", type=int, default=4,
                   help="every Nth kill lands inside a checkpoint write (default 4; 0: never)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill times (default 0)")
    p.add_argument("--work", help="folder for the runs (default: a temporary folder)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        z_path = None
        if 2 in args.stages:
            z_path = work / "z_stage2.npy"
            np.save(z_path, np.random.default_rng(1).standard_normal((384, 2)).astype(np.float32))
        t0 = time.monotonic()
        points = []
        for stage in args.stages:
            points += run_stage(stage, args.kills, work, rng, args.write_every, z_path, log)
        print(table(points, args.markdown))
        bad = [pt for pt in points if not pt.ok]
        print(f"\n{len(points) - len(bad)} of {len(points)} killed runs resumed to the uninterrupted "
              f"result (max |diff| ≤ 1e-5); {time.monotonic() - t0:.0f} s in all")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
