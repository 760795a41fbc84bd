#!/usr/bin/env python
"""Check a simulated set's star conventions with RELION's own reconstruction.

Writes variants of ``particles.star`` (the right one and deliberately wrong ones: astigmatism
angle mappings, shift sign, Euler sign), runs ``relion_reconstruct --ctf`` on each and prints
the correlation of each map with the true map, plus the resolution where their FSC drops
below 0.5. The right star must score clearly best. Needs RELION
(``apt-get install -y --no-install-recommends relion``) and numpy, pandas, mrcfile, starfile::

    python benchmarks/check_sim_with_relion.py SETDIR TRUE_MAP.mrc

Best run on a noiseless, single-frame set (``simulate_adk.py --snr inf --frames 48``).
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np
import starfile


def variants(p):
    """Name -> function(particles DataFrame) -> modified copy (RELION columns)."""
    def with_cols(**cols):
        def f(df):
            q = df.copy()
            for k, v in cols.items():
                q[k] = v(df)
            return q
        return f
    mean = lambda df: (df.rlnDefocusU + df.rlnDefocusV) / 2  # noqa: E731
    return {
        "right (as written)": with_cols(),
        "astig angle 90-alpha (cryojax angle as is)": with_cols(rlnDefocusAngle=lambda df: 90 - df.rlnDefocusAngle),
        "astig angle alpha+90 (U, V swapped)": with_cols(rlnDefocusAngle=lambda df: df.rlnDefocusAngle + 90),
        "astig angle -alpha (mirrored)": with_cols(rlnDefocusAngle=lambda df: -df.rlnDefocusAngle),
        "astigmatism dropped (U=V=mean)": with_cols(rlnDefocusU=mean, rlnDefocusV=mean),
        "shift sign flipped": with_cols(rlnOriginXAngst=lambda df: -df.rlnOriginXAngst,
                                        rlnOriginYAngst=lambda df: -df.rlnOriginYAngst),
        "Euler angles not negated": with_cols(rlnAngleRot=lambda df: -df.rlnAngleRot,
                                              rlnAngleTilt=lambda df: -df.rlnAngleTilt,
                                              rlnAnglePsi=lambda df: -df.rlnAnglePsi),
    }


def fsc_half_resolution(a: np.ndarray, b: np.ndarray, apix: float) -> float:
    """Resolution (Å) of the first Fourier shell where FSC(a, b) < 0.5; Nyquist if none."""
    d = a.shape[0]
    k = np.fft.fftfreq(d) * d
    shell = np.round(np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2))
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    for s in range(1, d // 2 + 1):
        m = shell == s
        num = np.real((fa[m] * fb[m].conj()).sum())
        if num / np.sqrt((abs(fa[m]) ** 2).sum() * (abs(fb[m]) ** 2).sum()) < 0.5:
            return d * apix / s
    return 2 * apix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("setdir", type=Path, help="folder with particles.star / particles.mrcs")
    ap.add_argument("truth", type=Path, help="true map (same box and pixel size)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    truth = mrcfile.read(a.truth).astype(np.float64)
    star = starfile.read(a.setdir / "particles.star")
    parts = star["particles"].copy()
    parts["rlnImageName"] = [f"{s.split('@')[0]}@{(a.setdir / s.split('@')[1]).resolve()}"
                             for s in parts.rlnImageName]
    apix = float(star["optics"].rlnImagePixelSize.iloc[0])
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, f) in enumerate(variants(parts).items()):
            s, out = Path(tmp) / f"v{i}.star", Path(tmp) / f"v{i}.mrc"
            starfile.write({"optics": star["optics"], "particles": f(parts)}, s, float_format="%.6f")
            t = time.perf_counter()
            subprocess.run(["relion_reconstruct", "--i", str(s), "--o", str(out), "--ctf",
                            "--j", str(a.threads)], check=True, capture_output=True)
            rec = mrcfile.read(out).astype(np.float64)
            corr = np.corrcoef(rec.ravel(), truth.ravel())[0, 1]
            print(f"{name:44s} corr {corr:6.3f}   FSC=0.5 at {fsc_half_resolution(rec, truth, apix):5.2f} Å"
                  f"   ({time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    main()
