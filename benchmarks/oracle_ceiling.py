#!/usr/bin/env python
"""Oracle ceiling of stage 1 on a simulated set: what the data allow at each resolution band.

The oracle knows the 98 true structures of the path (``gt_ca.npy`` and the atoms the simulator
used), every particle's pose, CTF, scale and the noise variance (σ = 1). For each particle it
renders the noiseless image of *every* frame at the particle's pose and CTF with the simulator
that made the particles (``benchmarks/simulate_adk.py`` or ``simulate_complex.py``, cryojax: no
engine code), evaluates the
exact Gaussian log-likelihood of each frame, and from the posterior over frames (uniform prior,
as the frames were drawn) reports what a perfect method would achieve:

* kNN R² and |ρ| of the posterior-mean frame used as a 1-D latent (``metrics.latent_figures``);
* the Cα RMSD ratio of the posterior-mean structure (posterior-weighted mean of the frames' Cα)
  against each particle's true frame, no fit, over the reference's (``metrics.ca_rmsd_summary``;
  reference = frame 48, the mid-path reference of the benchmarks, and frame 0, an end).

Band limits: the likelihood may use only the Fourier components with |k| ≤ 1/resolution
(20, 12, 10, 8, 6, 4 Å, Nyquist = 2·apix, and "all" = every component, i.e. the real-space
likelihood). With the orthonormal 2-D DFT the white real-space noise (σ = 1) stays white with
E|N_k|² = 1; a band that is symmetric under k → −k is an orthogonal projection P of real images,
so the band's log-likelihood is −½‖P(y − s·c_f)‖² = −½ Σ_{k in band} |Y_k − s·C_{f,k}|² (+ const).
On the half (rfft) grid, columns kx = 0 and kx = D/2 count once and the others twice.

Two steps, because the renderer needs the simulator's environment (jax, cryojax) and the figures
need the project's (torch, for ``benchmarks/metrics.py``)::

    OMP_NUM_THREADS=1 .simenv/bin/python benchmarks/oracle_ceiling.py render \\
        --data bench_data/adk64 --out bench_runs/oracle_adk64 --particles 600
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/oracle_ceiling.py score \\
        --out bench_runs/oracle_adk64 --ours bench_runs/s6_default_adk64

``render`` first re-draws the set from its ``settings.json`` (same seed), checks that it
reproduces the written particles byte for byte, then renders 98 frames per particle for the
first ``--particles`` particles in star order (a random sample: particles are i.i.d.), in chunks
that are saved as they finish (``oracle_stats.npz``; a rerun resumes). For every particle it also
checks that image − scale·(rendering of its true frame) is the simulated noise.  For a large
complex, ``--fit-scale`` recovers the simulator's scale from the first chunk (least squares of
image − noise on the true-frame renders) instead of rendering every particle once more; the 30S
set of ``simulate_complex.py`` (51k atoms, box 128) renders at ~0.4 CPU-s per image::

    OMP_NUM_THREADS=1 .simenv/bin/python benchmarks/oracle_ceiling.py render \\
        --data bench_data/ribo30s128 --out bench_runs/oracle_ribo30s128 --particles 128 \\
        --chunk 16 --batch 7 --fit-scale
    # a second process on other rows, scored together: render ... --first 128 --out B,
    # then score --out bench_runs/oracle_ribo30s128 --also B

``score`` reads the statistics, prints the table and writes ``oracle.json``. The band-limited
posterior maths below are plain numpy (importable without jax or torch; tested in ``tests/test_oracle_math.py``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_RESOLUTIONS_A = (20.0, 12.0, 10.0, 8.0, 6.0, 4.0)
ALL = 0.0  # resolution value meaning "every Fourier component" (the real-space likelihood)

# ----------------------------------------------------------------- band-limited Gaussian maths


def band_masks(box: int, apix: float, resolutions_A) -> np.ndarray:
    """Boolean masks of the rfft2 grid, one per resolution.

    Parameters
    ----------
    box : D, the (even) image size in px.
    apix : pixel size, Å.
    resolutions_A : sequence of B resolutions in Å; a component k is kept when
        |k| ≤ 1/resolution (cycles/Å); ``ALL`` (0) keeps every component, corners included.

    Returns
    -------
    (B, D, D//2 + 1) bool, in numpy's rfft2 layout (uncentred: row 0 = ky 0, last axis kx ≥ 0).
    Every mask is symmetric under k → −k (mod D), so it is a real orthogonal projection.
    """
    ky = np.fft.fftfreq(box)[:, None] / apix
    kx = np.fft.rfftfreq(box)[None, :] / apix
    k = np.sqrt(ky ** 2 + kx ** 2)                      # cycles/Å
    return np.stack([np.ones_like(k, bool) if r <= 0 else k <= 1.0 / r + 1e-12
                     for r in resolutions_A])


def rfft_weights(box: int) -> np.ndarray:
    """(D//2 + 1,) multiplicity of each rfft2 column in the full grid: 1 for kx = 0 and kx = D/2
    (self-conjugate columns), 2 for the others (their conjugate twin is not stored)."""
    w = np.full(box // 2 + 1, 2.0)
    w[0] = w[-1] = 1.0
    return w


def band_weights(masks: np.ndarray) -> np.ndarray:
    """(B, D, D//2 + 1) float: mask × column multiplicity; Σ = real degrees of freedom."""
    return masks * rfft_weights(2 * (masks.shape[-1] - 1))


def band_dof(masks: np.ndarray) -> np.ndarray:
    """(B,) number of real degrees of freedom (full-grid Fourier components) in each band."""
    return band_weights(masks).reshape(len(masks), -1).sum(1)


def fourier(images: np.ndarray, norm: str = "ortho") -> np.ndarray:
    """rfft2 of ``(..., D, D)`` real images, complex128. ``norm="ortho"`` keeps white noise of
    variance σ² at E|N_k|² = σ² (any other norm breaks :func:`log_likelihood`'s scale)."""
    return np.fft.rfft2(np.asarray(images, np.float64), norm=norm)


def band_gram(y_hat: np.ndarray, c_hat: np.ndarray, masks: np.ndarray):
    """Band-limited inner products of images with candidate renderings.

    Parameters
    ----------
    y_hat : (n, D, D//2+1) complex, :func:`fourier` of the n observed images.
    c_hat : (n, F, D, D//2+1) complex, :func:`fourier` of the F candidate renderings of each.
    masks : (B, D, D//2+1) bool, :func:`band_masks`.

    Returns
    -------
    yy : (n, B) ‖P_b y‖²;  yc : (n, F, B) ⟨P_b y, c_f⟩;  cc : (n, F, B) ‖P_b c_f‖² (float64).
    """
    w = band_weights(masks).reshape(len(masks), -1).T               # (K, B)
    n, f = c_hat.shape[:2]
    y = y_hat.reshape(n, -1)
    c = c_hat.reshape(n, f, -1)
    yy = (np.abs(y) ** 2) @ w
    yc = np.real(np.conj(y)[:, None, :] * c) @ w
    cc = (np.abs(c) ** 2) @ w
    return yy, yc, cc


def log_likelihood(yy: np.ndarray, yc: np.ndarray, cc: np.ndarray, scale: float,
                   noise_var: float = 1.0) -> np.ndarray:
    """(n, F, B) Gaussian log-likelihood −‖P_b(y − s·c_f)‖² / (2σ²) (constants dropped).

    ``scale`` s multiplies the renderings (the simulator's :func:`signal_scale`), ``noise_var``
    σ² is the real-space noise variance per pixel (1 for ``simulate_adk.py``).
    """
    sq = yy[:, None, :] - 2.0 * scale * yc + scale ** 2 * cc
    return -0.5 * sq / noise_var


def posterior(loglik: np.ndarray, axis: int = 1) -> np.ndarray:
    """Normalised posterior under a uniform prior: softmax of ``loglik`` along ``axis``."""
    a = loglik - loglik.max(axis=axis, keepdims=True)
    p = np.exp(a)
    return p / p.sum(axis=axis, keepdims=True)


def posterior_mean(post: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Σ_f p(f | y_i) · values[f]: ``post`` (n, F), ``values`` (F, ...) → (n, ...)."""
    values = np.asarray(values, np.float64)
    return (post @ values.reshape(len(values), -1)).reshape((len(post),) + values.shape[1:])


def noise_calibration(resid_hat: np.ndarray, masks: np.ndarray, noise_var: float = 1.0) -> np.ndarray:
    """(B,) mean over images of ‖P_b r‖² / (dof_b · σ²) for residuals r = y − s·c_true.

    When ``r`` is the noise and the Fourier normalisation is right this is 1 ± a few
    ``sqrt(2/(n·dof_b))``; a wrong normalisation shows as a factor (D² for an unnormalised DFT).
    """
    rr = (np.abs(resid_hat.reshape(len(resid_hat), -1)) ** 2) @ band_weights(masks).reshape(len(masks), -1).T
    return rr.mean(0) / (band_dof(masks) * noise_var)


def check_calibration(ratio: np.ndarray, n_images: int, dof: np.ndarray, n_sigma: float = 6.0) -> None:
    """Raise ValueError unless every band's :func:`noise_calibration` ratio is 1 within
    ``n_sigma`` standard errors (√(2 / (n·dof)) for a χ² mean) — or within 1e-3 of 1 for tiny
    standard errors."""
    tol = np.maximum(n_sigma * np.sqrt(2.0 / (n_images * np.asarray(dof, float))), 1e-3)
    bad = np.abs(np.asarray(ratio) - 1.0) > tol
    if bad.any():
        raise ValueError(f"noise calibration off: ‖P r‖²/dof = {np.round(ratio, 4).tolist()} "
                         f"(tolerance {np.round(tol, 4).tolist()}); wrong Fourier normalisation "
                         "or noise variance")


def band_label(res: float, apix: float) -> str:
    if res <= 0:
        return "all components (incl. corners)"
    if abs(res - 2 * apix) < 1e-9:
        return f"up to Nyquist ({res:g} Å)"
    return f"up to {res:g} Å"


# ---------------------------------------------------------------------- render (jax, cryojax)


def _atomic_savez(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def reload_simulated_set(data: Path):
    """``(SimConfig, Atoms with every frame)`` of a set written by ``simulate_adk.py`` or
    ``simulate_complex.py`` (the script its ``settings.json`` command names)."""
    sys.path.insert(0, str(HERE))
    command = json.loads((data / "settings.json").read_text())["command"]
    if Path(command.split()[0]).name == "simulate_complex.py":
        import simulate_complex
        return simulate_complex.reload_set(data)
    import simulate_adk
    cfg, sargs = simulate_adk.reload_set(data)
    return cfg, simulate_adk.load_atoms(sargs)


def fit_scale(images: np.ndarray, noise: np.ndarray, clean: np.ndarray) -> float:
    """Least-squares s in images − noise ≈ s·clean, all ``(n, D, D)``: the simulator's scale
    recovered from a few particles (exact up to the float32 rounding of the written images),
    for sets where rendering every particle's clean image would cost too much."""
    signal = np.asarray(images, np.float64) - noise
    clean = np.asarray(clean, np.float64)
    return float(np.sum(signal * clean) / np.sum(clean * clean))


def set_header(data: Path, cfg, resolutions, masks, scale: float, scale_method: str,
               clean: np.ndarray, noise: np.ndarray, images: np.ndarray) -> dict:
    """The run's header, with the check that ``scale``·clean + noise remakes ``images``
    (float32, as ``add_noise`` wrote them) on the particles given."""
    remade = (clean.astype(np.float64) * scale + noise).astype(np.float32)
    header = {
        "data": str(data), "n_total": cfg.n, "box": cfg.box, "apix": cfg.apix, "snr": cfg.snr,
        "scale": scale, "scale_method": scale_method, "noise_var": 1.0,
        "resolutions_A": resolutions, "dof": band_dof(masks).tolist(),
        "remade_particles": int(len(images)),
        "remade_identical_pixels": float(np.mean(remade == images)),
        "remade_max_abs_diff": float(np.abs(remade - images).max()),
    }
    print(f"re-simulated {len(images)} particles: {header['remade_identical_pixels']:.6f} of pixels "
          f"identical, max |Δ| {header['remade_max_abs_diff']:.3g}; scale {scale:.6g}", flush=True)
    return header


def render(args: argparse.Namespace) -> None:
    """Render every frame at the first ``--particles`` particles and save the band statistics."""
    import mrcfile
    import simulate_adk as sim_adk

    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cfg, atoms = reload_simulated_set(data)
    if args.batch:
        cfg = dataclasses.replace(cfg, batch=args.batch)
    rng = np.random.default_rng(cfg.seed)
    parts = sim_adk.draw_particles(cfg, rng)
    noise = sim_adk.draw_noise(rng, (cfg.n, cfg.box, cfg.box))
    gt_frame = np.load(data / "gt_frame.npy")
    if not np.array_equal(gt_frame, parts.frame):
        raise SystemExit(f"{data}: re-drawn frames differ from gt_frame.npy (not this simulator's set?)")
    with mrcfile.mmap(data / "particles.mrcs", permissive=True) as m:
        images = np.array(m.data, np.float32)
    first = args.first
    end = min(first + args.particles, cfg.n)         # star rows first … end − 1
    nyquist = 2 * cfg.apix         # bands at or beyond Nyquist are the Nyquist band
    resolutions = sorted({r for r in args.resolutions if r > nyquist}, reverse=True) + [nyquist, ALL]
    masks = band_masks(cfg.box, cfg.apix, resolutions)
    batch_sim = sim_adk.make_batch_simulator(cfg, atoms)

    stats_path = out / "oracle_stats.npz"
    keys = ("rows", "yy", "yc", "cc", "true_render_max_abs", "resid_noise_max_abs",
            "resid_noise_sq", "noise_sq", "resid_band_sq")
    done = {k: [] for k in keys}
    header = None
    if stats_path.exists():
        old = np.load(stats_path)
        header = json.loads(str(old["header"]))
        for k in keys:
            done[k] = [old[k] if k in old else np.arange(len(old["yy"]))]   # (older files: rows 0…)
        if int(done["rows"][0][0]) != first:
            raise SystemExit(f"{stats_path}: holds particles from row {int(done['rows'][0][0])}, "
                             f"not --first {first}; give another --out")
    clean = None
    if not args.fit_scale:      # all particles: the scale is a mean over the whole set
        clean_path = out / "clean_true_frames.npy"
        if clean_path.exists():
            clean = np.load(clean_path)
        else:
            clean = sim_adk.render_images(cfg, atoms, parts, np.arange(cfg.n), parts.frame, batch_sim)
            np.save(clean_path, clean)
        header = header or set_header(data, cfg, resolutions, masks, sim_adk.signal_scale(clean, cfg.snr),
                                      "the simulator's signal_scale of the whole set's clean images",
                                      clean, noise, images)
    start = first + sum(len(a) for a in done["yy"])
    n_f = atoms.coords.shape[0]
    w_bands = band_weights(masks).reshape(len(masks), -1).T
    for lo in range(start, end, args.chunk):
        t1 = time.perf_counter()
        rows = np.arange(lo, min(lo + args.chunk, end))
        renders = sim_adk.render_images(cfg, atoms, parts, np.repeat(rows, n_f),
                                        np.tile(np.arange(n_f), rows.size), batch_sim)
        renders = renders.reshape(rows.size, n_f, cfg.box, cfg.box)
        true = renders[np.arange(rows.size), parts.frame[rows]]
        if header is None:      # --fit-scale, first chunk
            header = set_header(data, cfg, resolutions, masks,
                                fit_scale(images[rows], noise[rows], true),
                                f"least squares of image − re-drawn noise on the true-frame "
                                f"renders of particles {rows[0] + 1}–{rows[-1] + 1}", true, noise[rows],
                                images[rows])
        scale = header["scale"]
        resid = images[rows].astype(np.float64) - scale * true.astype(np.float64)
        y_hat = fourier(images[rows])
        parts_out = {k: [] for k in ("yy", "yc", "cc")}
        for s in range(0, rows.size, 16):          # bound the complex128 temporaries (~50 MB)
            yy, yc, cc = band_gram(y_hat[s:s + 16], fourier(renders[s:s + 16]), masks)
            for k, v in zip(("yy", "yc", "cc"), (yy, yc, cc)):
                parts_out[k].append(v)
        for k in ("yy", "yc", "cc"):
            done[k].append(np.concatenate(parts_out[k]))
        done["rows"].append(rows)
        done["true_render_max_abs"].append(  # the candidate renders reproduce the particles' own
            np.full(rows.size, np.nan) if clean is None    # (--fit-scale: the residual check shows it)
            else np.abs(true - clean[rows]).reshape(rows.size, -1).max(1))
        diff = (resid - noise[rows]).reshape(rows.size, -1)
        done["resid_noise_max_abs"].append(np.abs(diff).max(1))
        done["resid_noise_sq"].append((diff ** 2).sum(1))
        done["noise_sq"].append((noise[rows].reshape(rows.size, -1) ** 2).sum(1))
        done["resid_band_sq"].append((np.abs(fourier(resid).reshape(rows.size, -1)) ** 2) @ w_bands)
        _atomic_savez(stats_path, header=np.array(json.dumps(header)),
                      **{k: np.concatenate(v) for k, v in done.items()})
        print(f"particles {rows[-1] + 1 - first}/{end - first} (rows {first}–{end - 1}): "
              f"{rows.size * n_f} renders in "
              f"{time.perf_counter() - t1:.0f} s; load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"render done in {time.perf_counter() - t0:.0f} s -> {stats_path}")


# ------------------------------------------------------------------------ score (torch, metrics)


def score(args: argparse.Namespace) -> dict:
    """Posterior, figures per band, and our run's figures on the same particles."""
    sys.path.insert(0, str(HERE))
    from metrics import ca_rmsd_summary, latent_figures, rmsd_by_group

    out = Path(args.out)
    header, st, ll = read_stats([out] + [Path(d) for d in args.also])
    data = Path(args.data or header["data"])
    particles = st["rows"]
    n = len(particles)
    frame = np.load(data / "gt_frame.npy")[particles].astype(np.int64)
    gt_ca = np.load(data / "gt_ca.npy").astype(np.float64)
    kinds = bead_kinds_of_set(data, gt_ca.shape[1])
    dof = np.asarray(header["dof"])
    calib = st["resid_band_sq"].mean(0) / dof
    check_calibration(calib, n, dof)
    noise_rel = float(np.sqrt(st["resid_noise_sq"].sum() / st["noise_sq"].sum()))
    rows = []
    for b, res in enumerate(header["resolutions_A"]):
        if res in header["resolutions_A"][:b]:
            continue               # (a band listed twice: a limit at Nyquist)
        post = posterior(ll[:, :, b])
        mean_f = posterior_mean(post, np.arange(post.shape[1], dtype=np.float64))
        lat = latent_figures(mean_f[:, None], frame)
        ca = posterior_mean(post, gt_ca)
        row = {"band": band_label(res, header["apix"]), "resolution_A": res,
               "knn_r2": lat.knn_r2, "abs_rho": lat.rho,
               "map_accuracy": float(np.mean(post.argmax(1) == frame)),
               "mean_abs_frame_error": float(np.mean(np.abs(mean_f - frame))),
               "posterior_sd_frames": float(np.mean(np.sqrt(np.maximum(
                   posterior_mean(post, np.arange(post.shape[1]) ** 2.0) - mean_f ** 2, 0)))),
               "noise_calibration": float(calib[b])}
        for ref in args.ref:
            r = ca_rmsd_summary(ca, frame, gt_ca, gt_ca[ref])
            row[f"rmsd_ratio_ref{ref:03d}"] = r["ratio"]
            row[f"ca_rmsd_A_ref{ref:03d}"] = r["rmsd"]
            row[f"ref_rmsd_A_ref{ref:03d}"] = r["ref_rmsd"]
            if kinds is not None:
                for kind, d in rmsd_by_group(ca, frame, gt_ca, gt_ca[ref], kinds).items():
                    row[f"rmsd_ratio_ref{ref:03d}_{kind}"] = d["ratio"]
        rows.append(row)
    result = {"data": str(data), "particles": n, "header": header,
              "checks": {"true_render_max_abs_diff": None if np.isnan(st["true_render_max_abs"]).all()
                         else float(np.nanmax(st["true_render_max_abs"])),
                         "resid_minus_noise_max_abs": float(st["resid_noise_max_abs"].max()),
                         "resid_minus_noise_rel": noise_rel,
                         "noise_calibration_per_band": calib.tolist()},
              "bands": rows}
    if args.ours:
        result["ours"] = ours = ours_on_subset(Path(args.ours), data, particles, args.ours_ref)
        band = [r for r in rows if ours["low_pass_A"] and abs(r["resolution_A"] - ours["low_pass_A"]) < 1e-6]
        if band and args.ours_ref == "ref_frame048.pdb" and 48 in args.ref:
            ours["fraction_of_ceiling"] = fraction_of_ceiling(ours, band[0])
    (out / "oracle.json").write_text(json.dumps(result, indent=1) + "\n")
    print_table(result, args.ref)
    return result


def read_stats(folders: list[Path]):
    """``(header, stats, loglik)`` of one or more ``render`` outputs of the same set (e.g. two
    processes that rendered different ``--first`` rows), joined particle by particle.

    ``stats`` maps each array of ``oracle_stats.npz`` (plus ``rows``: star rows, 0… for files
    written before rows were stored) to its concatenation; ``loglik`` (n, F, B) uses each
    file's own fitted scale.  The bands and the set must agree; a row may appear only once.
    """
    headers, parts, lls = [], [], []
    for folder in folders:
        st = np.load(folder / "oracle_stats.npz")
        h = json.loads(str(st["header"]))
        arrays = {k: st[k] for k in st.files if k != "header"}
        arrays.setdefault("rows", np.arange(len(arrays["yy"])))
        headers.append(h)
        parts.append(arrays)
        lls.append(log_likelihood(arrays["yy"], arrays["yc"], arrays["cc"], h["scale"], h["noise_var"]))
    for folder, h in zip(folders[1:], headers[1:]):
        if h["resolutions_A"] != headers[0]["resolutions_A"] or h["n_total"] != headers[0]["n_total"]:
            raise SystemExit(f"{folder}: another set or other bands than {folders[0]}")
    stats = {k: np.concatenate([a[k] for a in parts]) for k in parts[0]}
    if len(np.unique(stats["rows"])) != len(stats["rows"]):
        raise SystemExit(f"{', '.join(map(str, folders))}: the same particle rendered twice")
    return headers[0], stats, np.concatenate(lls)


def bead_kinds_of_set(data: Path, n_beads: int):
    """``(R,)`` "protein" / "RNA" of the set's beads (``gt_ca.npy`` in the order of its
    ``ref_frame048.pdb``) when it holds nucleotides, else None (AdK's sets: protein only, and
    their ``gt_ca.npy`` may follow AdK's numbering rather than the PDB's)."""
    from metrics import bead_kinds

    from cryostar_engine.io import read_beads

    pdb = data / "ref_frame048.pdb"
    if not pdb.exists():
        return None
    beads = read_beads(str(pdb))
    if not beads.is_nucleotide.any() or len(beads) != n_beads:
        return None
    return bead_kinds(beads.is_nucleotide)


def ours_on_subset(run: Path, data: Path, particles: np.ndarray, ref_pdb: str) -> dict:
    """Our stage-1 run's figures on the oracle's ``particles`` (star rows), and its full-set
    figures."""
    from metrics import bead_kinds, ca_rmsd_summary, latent_figures, rmsd_by_group
    from peer_common import load_bench_data, truth_and_reference_ca

    from cryostar_engine.atom import load_decoder

    bench = load_bench_data(data, None)
    z = np.load(run / "z.npy")[particles]
    decode, beads = load_decoder(str(run))
    truth, ref_ca = truth_and_reference_ca(bench, data / ref_pdb, beads.chain_ids, beads.res_ids)
    frame = bench.frame[particles]
    lat = latent_figures(z, frame)
    decoded = decode(z)
    rmsd = ca_rmsd_summary(decoded, frame, truth, ref_ca)
    by_kind = {}
    if beads.is_nucleotide.any():
        by_kind = {f"rmsd_ratio_{k}": d["ratio"] for k, d in rmsd_by_group(
            decoded, frame, truth, ref_ca, bead_kinds(beads.is_nucleotide)).items()}
    full = next((run / f for f in ("bench_atom.json", "large_complex.json") if (run / f).exists()),
                run / "bench_atom.json")
    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    return {"run": str(run), "knn_r2": lat.knn_r2, "abs_rho": lat.rho, "rmsd_ratio": rmsd["ratio"],
            **by_kind,
            "low_pass_A": cfg.get("low_pass_A"),
            "full_set": json.loads(full.read_text()) if full.exists() else None}


def fraction_of_ceiling(ours: dict, band: dict) -> dict:
    """Our figures as fractions of the oracle's in our own band (same particles, reference 48):
    kNN R² and |ρ| as ours / oracle; the RMSD ratio as the fraction of the band's attainable
    reduction, (1 − ours) / (1 − oracle) (1 = as close to the truth as the band allows)."""
    return {"band": band["band"], "knn_r2": ours["knn_r2"] / band["knn_r2"],
            "abs_rho": ours["abs_rho"] / band["abs_rho"],
            "rmsd_reduction": (1 - ours["rmsd_ratio"]) / (1 - band["rmsd_ratio_ref048"])}


def print_table(result: dict, refs) -> None:
    print(f"{result['data']}: {result['particles']} particles; checks {result['checks']}")
    kinds = [k for k in ("protein", "RNA") if f"rmsd_ratio_ref{refs[0]:03d}_{k}" in result["bands"][0]]
    head = "| information used | kNN R² | abs ρ | " + " | ".join(
        f"RMSD ratio (ref {r})" for r in refs) + "".join(
        f" | {k} ratio (ref {refs[0]})" for k in kinds) + " | MAP acc. | mean abs frame error |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for row in result["bands"]:
        print(f"| {row['band']} | {row['knn_r2']:.3f} | {row['abs_rho']:.3f} | " + " | ".join(
            f"{row[f'rmsd_ratio_ref{r:03d}']:.3f}" for r in refs)
              + "".join(f" | {row[f'rmsd_ratio_ref{refs[0]:03d}_{k}']:.3f}" for k in kinds)
              + f" | {row['map_accuracy']:.3f} | {row['mean_abs_frame_error']:.2f} |")
    ours = result.get("ours")
    if ours:
        print(f"| ours ({ours['run']}, same particles) | {ours['knn_r2']:.3f} | {ours['abs_rho']:.3f} | "
              f"{ours['rmsd_ratio']:.3f} |" + " |" * (len(refs) - 1)
              + "".join(f" {ours.get(f'rmsd_ratio_{k}', float('nan')):.3f} |" for k in kinds) + " | |")
        frac = ours.get("fraction_of_ceiling")
        if frac:
            print(f"fraction of the oracle {frac['band']}: kNN R² {frac['knn_r2']:.3f}, |ρ| "
                  f"{frac['abs_rho']:.3f}, RMSD reduction {frac['rmsd_reduction']:.3f}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="(simulator env) render all frames, save band statistics")
    r.add_argument("--data", required=True,
                   help="folder written by simulate_adk.py or simulate_complex.py")
    r.add_argument("--out", required=True, help="output folder (resumes oracle_stats.npz)")
    r.add_argument("--particles", type=int, default=600, help="N particles in star order")
    r.add_argument("--first", type=int, default=0,
                   help="star row of the first particle (several processes can render disjoint "
                        "rows into separate --out folders; score joins them with --also)")
    r.add_argument("--chunk", type=int, default=64, help="particles per saved chunk")
    r.add_argument("--batch", type=int, default=None,
                   help="renders per simulator call (default: the set's; smaller can be faster "
                        "for many atoms, at the same images)")
    r.add_argument("--fit-scale", action="store_true",
                   help="recover the signal scale from the first chunk (least squares) instead of "
                        "rendering every particle's clean image (for large sets)")
    r.add_argument("--resolutions", type=float, nargs="+", default=list(DEFAULT_RESOLUTIONS_A),
                   help="band limits in Å (Nyquist and 'all components' are always added; limits "
                        "at or beyond Nyquist are dropped)")
    s = sub.add_parser("score", help="(project env) posterior figures per band")
    s.add_argument("--out", required=True)
    s.add_argument("--data", default=None, help="default: the folder render used")
    s.add_argument("--also", nargs="*", default=[],
                   help="more render outputs of the same set (other --first rows) to score with --out's")
    s.add_argument("--ref", type=int, nargs="+", default=[48, 0],
                   help="reference frames for the RMSD ratio")
    s.add_argument("--ours", default=None, help="a stage-1 run folder (z.npy) to score on the same particles")
    s.add_argument("--ours-ref", default="ref_frame048.pdb", help="the reference PDB of --ours")
    args = p.parse_args(argv)
    render(args) if args.cmd == "render" else score(args)


if __name__ == "__main__":
    main()
