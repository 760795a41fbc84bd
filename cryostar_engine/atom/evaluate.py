"""Use a trained atom generator: encode particles to z, decode z to structures, previews."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.particles import ParticleDataset
from ..errors import InputError
from ..io.atomic import atomic_path
from ..io.pdb import Beads, read_beads
from ..train.checkpoint import load_latest_checkpoint
from .config import AtomConfig, read_run_config
from .forward import AtomForwardModel
from .networks import AtomVAE

__all__ = ["encode_all", "save_z", "load_run", "load_decoder", "write_preview"]

REFERENCE_FILE = "reference_beads.pdb"


def encode_all(model: AtomVAE, forward: AtomForwardModel, dataset: ParticleDataset, scale: float,
               device, batch: int = 256) -> np.ndarray:
    """Latent means ``(N, zdim)`` of every particle, in star-file order (no sampling)."""
    out = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(dataset), batch):
            b = dataset.batch(np.arange(start, min(start + batch, len(dataset))), device)
            mu, _ = model.encoder(encoder_input(forward, b, scale))
            out.append(mu.float().cpu())
    model.train()
    return torch.cat(out).numpy()


def encoder_input(forward: AtomForwardModel, batch, scale: float, image=None) -> torch.Tensor:
    """``(B, D*D)``: the centred particle low-passed at the encoder's band (``image``, else
    :meth:`~AtomForwardModel.encoder_image` of ``batch``), masked, divided by the data's scale."""
    if image is None:
        image = forward.encoder_image(batch)
    return (image * forward.mask).flatten(1) / scale


def save_z(run_dir, z: np.ndarray) -> Path:
    """Write ``RUN/z.npy`` atomically."""
    target = Path(run_dir) / "z.npy"
    with atomic_path(target, suffix=".npy") as tmp, open(tmp, "wb") as f:
        np.save(f, z.astype(np.float32))
    return target


def load_run(run_dir, device="cpu") -> tuple[AtomVAE, AtomConfig, Beads, dict]:
    """Rebuild the trained model of a stage-1 run from its config and latest checkpoint."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)           # a stage-2 run is refused in one line
    state = load_latest_checkpoint(run_dir, map_location=device)
    if state is None:
        raise InputError(f"{run_dir}: no checkpoint yet; wait for the first one or train longer")
    # names from the run's reference PDB (written in the user frame); coordinates in the box frame,
    # the decoder's, from the trained model's own reference buffer
    beads = read_beads(run_dir / REFERENCE_FILE)
    beads = beads.with_coords(state["model"]["reference_A"].double().cpu().numpy())
    model = AtomVAE(state["box"], len(beads), cfg.zdim, cfg.encoder_hidden, cfg.decoder_hidden,
                    torch.as_tensor(beads.coords_A))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg, beads, state


def load_decoder(run_dir, device="cpu"):
    """``decode(z (M, zdim)) -> (M, N, 3)`` bead coordinates (Å, box frame) of a trained run,
    and the reference :class:`Beads` (chain ids, residue numbers and names)."""
    model, cfg, beads, _ = load_run(run_dir, device)

    def decode(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != cfg.zdim:
            raise InputError(f"latent vectors must have shape (M, {cfg.zdim}), got {z.shape}")
        with torch.no_grad():
            out = [model.structures(torch.from_numpy(z[i:i + 1024]).to(device)).cpu()
                   for i in range(0, len(z), 1024)]
        return torch.cat(out).numpy().astype(np.float64)

    return decode, beads


def write_preview(path, targets: torch.Tensor, preds: torch.Tensor, n: int = 8) -> None:
    """PNG: particles (centred, low-passed) next to the rendered predictions, ``n`` rows."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(targets))
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
    for i in range(n):
        for row, (img, label) in enumerate([(targets[i], "particle"), (preds[i], "prediction")]):
            ax = axes[row, i]
            ax.imshow(img.float().cpu().numpy(), cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(label)
    fig.suptitle("centred, low-passed particles vs. rendered CTF-filtered predictions", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
