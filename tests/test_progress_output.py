"""What a user sees while a training runs: plain progress lines when the output is captured
(Scipion's run.stdout, a pipe, a file), a bar on a terminal, and log messages that never glue
onto the progress (the fault was ``kl=3step 30: wrote z.npy``)."""
import io
import re
import subprocess
import sys
import time

from cryostar_engine.train.progress import Progress, format_duration, run_logger

from conftest import ADK_REF, ADK_STAR, REPO

LINE = re.compile(r"^progress: (\d+)% step (\d+)/(\d+), [\d,]+/[\d,]+ images, [\d,]+ img/s, "
                  r"loss=\S+( \w+=\S+)*, elapsed \w+, ETA \w+$")


def test_captured_training_prints_plain_progress_lines(tmp_path):
    cmd = [sys.executable, "-m", "cryostar_engine", "train-atom", "--particles", str(ADK_STAR),
           "--model", str(ADK_REF), "--epochs", "10", "--box", "24", "--low-pass", "10",
           "--batch", "64", "--threads", "1", "--out", str(tmp_path / "run")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\r" not in done.stdout and "\r" not in done.stderr
    assert "\x1b" not in done.stdout
    lines = done.stdout.splitlines()
    progress = [ln for ln in lines if "progress:" in ln]
    assert len(progress) >= 3, done.stdout
    for ln in progress:
        assert LINE.match(ln), ln
    first, last = LINE.match(progress[0]), LINE.match(progress[-1])
    assert int(first.group(1)) < 100
    assert last.group(1) == "100" and last.group(2) == last.group(3) == "60"
    # every message is a line of its own, after the progress it follows
    wrote = [i for i, ln in enumerate(lines) if "wrote z.npy" in ln]
    assert wrote and all(lines[i].startswith("step ") for i in wrote)
    assert lines.index(progress[-1]) < wrote[-1]
    assert "progress:" not in done.stderr


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_terminal_bar_ends_its_line_before_a_message(tmp_path, monkeypatch):
    tty = _Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    log = run_logger(tmp_path)
    progress = Progress(tmp_path, total_images=64 * 3, interval_s=0.0)
    for step in (1, 2):
        progress.record(step, 64, {"loss": 1.5, "kl": 3.0})
        time.sleep(0.06)                       # separate read-back bursts
    log.info("step 2: wrote z.npy")
    progress.record(3, 64, {"loss": 1.2, "kl": 3.0})
    progress.close()
    out = tty.getvalue()
    shown = [line.rsplit("\r", 1)[-1] for line in out.split("\n")]   # what stays on screen
    assert "step 2: wrote z.npy" in shown
    assert "\r[ 33.3%] step 1/3" in out and "ETA" in out
    assert out.endswith("\n") and "[100.0%] step 3/3" in out
    for handler in list(log.handlers):
        handler.close()
        log.removeHandler(handler)


def test_format_duration():
    assert [format_duration(s) for s in (4.4, 65, 3720, float("inf"))] == \
        ["4s", "1m05s", "1h02m", "?"]


def test_step_total_counts_full_steps_after_a_short_one(tmp_path):
    """A run resumed at a pass's short last step (stage 2: 3,000 particles, batch 16) states
    the steps left in full batches (the fault: 'step 3196/9571' for 6,384)."""
    out = io.StringIO()
    progress = Progress(tmp_path, total_images=100, images_done=40, interval_s=0.0, stream=out,
                        step_images=16)
    progress.record(3, 8, {"loss": 1.0})          # the pass's last step: 8 images
    progress.flush()
    progress.close()
    line = [ln for ln in out.getvalue().splitlines() if "progress:" in ln][0]
    assert "step 3/7," in line, line             # 3 + ceil(52 / 16), not 3 + 52 / 8
