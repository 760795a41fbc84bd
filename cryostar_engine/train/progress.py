"""Progress on the terminal (images/s and each loss term), a log file and ``losses.csv``."""
from __future__ import annotations

import csv
import logging
import sys
import time
from pathlib import Path

import torch

__all__ = ["Progress", "run_logger"]


def run_logger(run_dir, name: str = "cryostar_engine") -> logging.Logger:
    """A logger writing to ``RUN/run.log`` (appending, so a resumed run keeps its history)."""
    log = logging.getLogger(f"{name}.{Path(run_dir).resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    if not log.handlers:
        fh = logging.FileHandler(Path(run_dir) / "run.log")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(fh)
        log.addHandler(sh)
    return log


class Progress:
    """Tracks images seen and writes one ``losses.csv`` row per :meth:`record` call.

    The csv is appended to (resume-safe); its columns are fixed by the first row written.
    A one-line status goes to stderr at most every ``interval_s`` seconds.
    """

    def __init__(self, run_dir, total_images: int, images_done: int = 0, interval_s: float = 2.0,
                 stream=None):
        self.csv_path = Path(run_dir) / "losses.csv"
        self.total, self.done = total_images, images_done
        self.interval_s = interval_s
        self.stream = stream if stream is not None else sys.stderr
        self._t0 = time.perf_counter()
        self._done0 = images_done
        self._last_print = 0.0
        self._fields = None
        if self.csv_path.is_file():
            with open(self.csv_path) as f:
                header = f.readline().strip()
            self._fields = header.split(",") if header else None

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

    def record(self, step: int, images: int, losses: dict) -> None:
        """Add ``images`` to the count; append ``step, images_seen, <losses>`` to the csv."""
        self.done += images
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
        now = time.perf_counter()
        if now - self._last_print >= self.interval_s or self.done >= self.total:
            self._last_print = now
            pct = 100.0 * self.done / max(self.total, 1)
            terms = " ".join(f"{k}={float(v):.4g}" for k, v in losses.items())
            print(f"\r[{pct:5.1f}%] step {step} {self.done}/{self.total} img "
                  f"{self.images_per_s:,.0f} img/s {terms}", end="", file=self.stream, flush=True)

    def close(self) -> None:
        print("", file=self.stream, flush=True)
