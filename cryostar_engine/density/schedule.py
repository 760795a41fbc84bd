"""The stage-2 defaults that depend on the run: its length (sized to the set) and the MLP width
(chosen for the device), resolved when a run starts and recorded in ``RUN/config.json``.

* **Length.**  Like stage 1, the schedule is defined by *images seen*: 20 passes over the
  particles, or on sets smaller than ``MIN_TRAIN_IMAGES / 20`` particles as many passes as it
  takes to show the network :data:`MIN_TRAIN_IMAGES` images.  Stage 2 trains at a constant
  learning rate until its final decay; the figure comes from the learning curves of
  ``benchmarks/density_curve.py`` on two sets (RESULTS.md, "Stage 2 at its default length"):
  heterogeneity carried and AU-FSC peak near 100,000 images on both and then slowly fall at
  the constant rate (AdK 0.757 from 99,000 to 180,000 images; the dimer 0.723 → 0.678).
* **Learning rate.**  Constant at ``--lr`` (5e-4), then over the last ``lr_decay_fraction``
  (0.1) of the images half a cosine down to :data:`LR_FINAL_FRACTION` of it: on the benchmark
  set the decay after 48,000 images raised heterogeneity carried 0.728 → 0.740 and AU-FSC
  0.369 → 0.379 within 6,000 images, where the constant rate reached 0.733 / 0.370.
* **Width.**  ``--hidden`` left out means *auto*: :data:`AUTO_HIDDEN` per device type (a CPU
  core trains the 256-wide MLP 8-10× faster than the 1024-wide one, which on a GPU costs little).
  The decision is recorded as ``hidden`` (the value) and ``hidden_source`` (``"auto: cpu"``,
  ``"auto: cuda"`` or ``"--hidden"``) and logged; it is never changed silently, and a resumed
  run keeps its recorded width whatever the device.
"""
from __future__ import annotations

import math

import torch

__all__ = ["DEFAULT_EPOCHS", "MIN_TRAIN_IMAGES", "AUTO_HIDDEN", "LR_FINAL_FRACTION", "default_density_epochs",
           "auto_hidden", "resolve_run_defaults"]

DEFAULT_EPOCHS = 20.0
MIN_TRAIN_IMAGES = 100_000
AUTO_HIDDEN = {"cpu": 256, "cuda": 1024}
# the learning rate at the end of the final decay, as a fraction of --lr (``lr_decay_fraction``)
LR_FINAL_FRACTION = 0.1
EXPLICIT = "--hidden"


def default_density_epochs(n_particles: int) -> float:
    """Training length (passes) when ``--epochs`` is not given: 20, or on a set of fewer than
    ``MIN_TRAIN_IMAGES / 20`` particles the whole passes that reach :data:`MIN_TRAIN_IMAGES`."""
    return max(DEFAULT_EPOCHS, float(math.ceil(MIN_TRAIN_IMAGES / max(n_particles, 1))))


def auto_hidden(device) -> tuple[int, str]:
    """``(width, source)`` of the MLP for a run on ``device`` (a ``torch.device`` or its name):
    :data:`AUTO_HIDDEN` by device type (any other type: the CPU's)."""
    kind = torch.device(device).type
    return AUTO_HIDDEN.get(kind, AUTO_HIDDEN["cpu"]), f"auto: {kind}"


def resolve_run_defaults(config, n_particles: int, device, resumed: bool = False):
    """``config`` with ``epochs`` and ``hidden`` resolved (unchanged where already set) and the
    lines that say what was decided (for ``run.log``).

    A config read from a run folder (``resumed``) is already resolved: it comes back with its
    width and length, whatever ``device`` is now; a run saved before ``hidden_source`` existed
    gets ``"saved run"``.
    """
    changes, notes = {}, []
    if config.epochs is None:
        epochs = default_density_epochs(n_particles)
        changes["epochs"] = epochs
        notes.append(f"length: {epochs:g} epochs ({round(epochs * n_particles):,} images) by "
                     f"default: {DEFAULT_EPOCHS:g} passes, at least {MIN_TRAIN_IMAGES:,} images")
    if config.hidden is None:
        hidden, source = auto_hidden(device)
        changes.update(hidden=hidden, hidden_source=source)
        notes.append(f"width: --hidden {hidden} ({source}; give --hidden to choose)")
    elif config.hidden_source is None:
        changes["hidden_source"] = "saved run" if resumed else EXPLICIT
        notes.append(f"width: --hidden {config.hidden} "
                     f"({'saved run' if resumed else 'given'})")
    else:
        notes.append(f"width: --hidden {config.hidden} (recorded: {config.hidden_source})")
    return (config.replace(**changes) if changes else config), notes
