"""Progress of a training run: ``losses.csv``, ``run.log`` and what the user sees while it runs.

Two ways of showing progress, chosen by whether stderr is a terminal:

* **terminal**: a one-line bar on stderr, redrawn in place (``\\r``) at most every
  ``interval_s`` seconds; a log message printed while the bar is open first ends the bar's
  line, so messages never glue onto it;
* **anything else** (a pipe, a file, Scipion's ``run.stdout``): plain lines on stdout, one each
  time another ``every_pct`` percent of the images is done (and at least every
  ``max_quiet_s`` seconds), with no carriage return and no escape code::

      progress: 25% step 45/180, 11,520/46,080 images, 412 img/s, loss=1.234 kl=0.5, elapsed 28s, ETA 1m24s

  The run's INFO messages go to stdout as well (in order with the progress lines); warnings and
  errors stay on stderr.

The trainers read their losses back from the device in bursts of steps, so the numbers shown
(images/s, ETA) are those at the end of a burst; a message logged meanwhile is preceded by the
progress it follows.
"""
from __future__ import annotations

import csv
import logging
import math
import sys
import time
from pathlib import Path

import torch

__all__ = ["Progress", "run_logger", "format_duration", "is_terminal"]

BURST_GAP_S = 0.05    # record() calls closer than this belong to one read-back burst


def is_terminal(stream) -> bool:
    """True when ``stream`` is an interactive terminal (False for pipes, files, closed streams)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def format_duration(seconds: float) -> str:
    """``"12s"``, ``"3m05s"``, ``"1h02m"`` (``"?"`` for an unknown or infinite time)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class _Console:
    """What the console shows now: the running :class:`Progress` (None when none runs) and the
    stream whose last line is an unfinished progress bar (None when every line ended)."""

    progress = None
    bar_stream = None

    @classmethod
    def before_message(cls, stream) -> None:
        """Show a due progress line, then end the bar's line on ``stream``, so that a message
        written there next starts on its own line and after the progress it follows."""
        if cls.progress is not None:
            cls.progress.flush()
        if cls.bar_stream is not None and cls.bar_stream is stream:
            stream.write("\n")
            stream.flush()
            cls.bar_stream = None


class _LineSafeHandler(logging.StreamHandler):
    """A stream handler that ends an open progress bar's line before writing its message.

    The stream is looked up when a message is written (``sys.stdout``/``sys.stderr`` by name),
    so a test or caller that replaces the process' streams gets the messages."""

    def __init__(self, stream_name: str):
        super().__init__(getattr(sys, stream_name))
        self.stream_name = stream_name

    def emit(self, record: logging.LogRecord) -> None:
        self.setStream(getattr(sys, self.stream_name))
        _Console.before_message(self.stream)
        super().emit(record)


class _Below(logging.Filter):
    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def run_logger(run_dir, name: str = "cryostar_engine") -> logging.Logger:
    """A logger writing to ``RUN/run.log`` (appending, so a resumed run keeps its history) and to
    the console: everything to stderr on a terminal; otherwise INFO to stdout and warnings and
    errors to stderr (see the module docstring)."""
    log = logging.getLogger(f"{name}.{Path(run_dir).resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    if not log.handlers:
        fh = logging.FileHandler(Path(run_dir) / "run.log")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(fh)
        plain = logging.Formatter("%(message)s")
        if is_terminal(sys.stderr):
            handlers = [_LineSafeHandler("stderr")]
        else:
            info, problems = _LineSafeHandler("stdout"), _LineSafeHandler("stderr")
            info.addFilter(_Below(logging.WARNING))
            problems.setLevel(logging.WARNING)
            handlers = [info, problems]
        for h in handlers:
            h.setFormatter(plain)
            log.addHandler(h)
    return log


class Progress:
    """Tracks images seen, writes one ``losses.csv`` row per :meth:`record` call and shows the
    progress (a bar on a terminal, plain lines otherwise: see the module docstring).

    The csv is appended to (resume-safe); its columns are fixed by the first row written.

    Parameters
    ----------
    run_dir : the run folder (``losses.csv`` is written there).
    total_images : images of the whole run; ``images_done`` : already seen (a resumed run).
    interval_s : the bar's redraw interval on a terminal.
    stream : where progress goes; None picks stderr on a terminal, else stdout.  A terminal
        stream gets the bar, any other stream plain lines.
    every_pct, max_quiet_s : plain lines are written each ``every_pct`` percent of the images,
        and after at most ``max_quiet_s`` seconds without one.
    """

    def __init__(self, run_dir, total_images: int, images_done: int = 0, interval_s: float = 2.0,
                 stream=None, every_pct: float = 5.0, max_quiet_s: float = 120.0,
                 step_images: int = 0):
        self.csv_path = Path(run_dir) / "losses.csv"
        self.total, self.done = total_images, images_done
        self.interval_s = interval_s
        if stream is None:
            stream = sys.stderr if is_terminal(sys.stderr) else sys.stdout
        self.stream = stream
        self.bar = is_terminal(stream)
        self.every_pct, self.max_quiet_s = every_pct, max_quiet_s
        self._t0 = time.perf_counter()
        self._done0 = images_done
        self._last_print = 0.0 if self.bar else self._t0
        self._next_pct = self._pct_now() if self.bar else self._following_mark(self._pct_now())
        self._snapshot = None          # the progress text as of the last record
        self._last_t, self._last_step, self._shown_step = self._t0, None, None
        self._due = False
        self._bar_width = 0
        self._fields = None
        # images of a full step, for the step total (a pass's last step may be short)
        self._step_images = step_images
        if self.csv_path.is_file():
            with open(self.csv_path) as f:
                header = f.readline().strip()
            self._fields = header.split(",") if header else None
        _Console.progress = self

    def truncate_after(self, step: int) -> None:
        """Drop csv rows after ``step`` (a resumed run replays the steps after its checkpoint)."""
        if not self.csv_path.is_file():
            return
        lines = self.csv_path.read_text().splitlines(keepends=True)
        kept = lines[:1] + [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= step]
        self.csv_path.write_text("".join(kept))

    @property
    def images_per_s(self) -> float:
        return (self.done - self._done0) / max(time.perf_counter() - self._t0, 1e-9)

    @property
    def eta_s(self) -> float:
        """Seconds left at the speed of this process so far (inf before the first image)."""
        rate = self.images_per_s
        return max(self.total - self.done, 0) / rate if rate > 0 else math.inf

    def _pct_now(self) -> float:
        return 100.0 * self.done / max(self.total, 1)

    def _following_mark(self, pct: float) -> float:
        return (math.floor(pct / self.every_pct) + 1) * self.every_pct

    def record(self, step: int, images: int, losses: dict) -> None:
        """Add ``images`` to the count; append ``step, images_seen, <losses>`` to the csv.

        Steps are read back from the device in bursts (many ``record`` calls at one moment), so a
        due line is shown with the numbers of the last step of its burst: when the next burst
        starts (a pause of more than :data:`BURST_GAP_S`), at :meth:`flush` or at the end.
        """
        now = time.perf_counter()
        if self._due and now - self._last_t > BURST_GAP_S:
            self._show()
        self.done += images
        self._step_images = max(self._step_images, images)
        values = torch.stack([torch.as_tensor(v, dtype=torch.float32).detach().cpu().reshape(())
                              for v in losses.values()]).tolist()   # one device sync, not one per term
        losses = dict(zip(losses, values))
        row = {"step": step, "images_seen": self.done, **{k: f"{v:.6g}" for k, v in losses.items()}}
        new = self._fields is None
        if new:
            self._fields = list(row)
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        self._last_t, self._last_step = now, step
        self._snapshot = self._describe(step, images, losses, now)
        finished = self.done >= self.total
        if self.bar:
            self._due = self._due or now - self._last_print >= self.interval_s
        else:
            self._due = (self._due or self._pct_now() >= self._next_pct
                         or now - self._last_print >= self.max_quiet_s)
        if finished:
            self._show()

    def flush(self) -> None:
        """Show a due line now (e.g. after a burst of :meth:`record` calls)."""
        if self._due:
            self._show()

    def _describe(self, step: int, images: int, losses: dict, now: float) -> str:
        """The progress text as of ``now``, the end of ``step`` (``images`` images a step)."""
        total_steps = step + math.ceil(max(self.total - self.done, 0) / max(self._step_images, 1))
        elapsed = now - self._t0
        rate = (self.done - self._done0) / max(elapsed, 1e-9)
        eta = max(self.total - self.done, 0) / rate if rate > 0 else math.inf
        terms = " ".join(f"{k}={float(v):.4g}" for k, v in losses.items())
        pct = f"{self._pct_now():5.1f}%" if self.bar else f"{self._pct_now():.0f}%"
        return (f"{pct} step {step}/{total_steps}, {self.done:,}/{self.total:,} images, "
                f"{rate:,.0f} img/s, {terms}, elapsed {format_duration(elapsed)}, "
                f"ETA {format_duration(eta)}")

    def _show(self) -> None:
        self._due = False
        self._last_print = time.perf_counter()
        self._shown_step = self._last_step
        if self.bar:
            text = f"[{self._snapshot.replace('%', '%]', 1)}"
            pad = max(self._bar_width - len(text), 0)
            self._bar_width = len(text)
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
            _Console.bar_stream = self.stream
        else:
            self._next_pct = self._following_mark(self._pct_now())
            print(f"progress: {self._snapshot}", file=self.stream, flush=True)

    def close(self) -> None:
        """Show the last state if it was not shown yet, and end the bar's line."""
        if self._snapshot is not None and self._shown_step != self._last_step:
            self._show()
        if _Console.progress is self:
            _Console.progress = None
        if self.bar:
            _Console.before_message(self.stream)
