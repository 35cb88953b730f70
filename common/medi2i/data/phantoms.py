"""Synthetic BraTS-like phantoms, deterministic by seed, written in the BraTS 2018 (or 2023) layout.

Each case is a skull-stripped brain: an ellipsoid with a wavy grey/white-matter boundary, two ventricles, and
(optionally) a tumour made of a necrotic core (label 1), oedema (label 2) and an enhancing rim (label 4) of
known size and position. Each tissue has its own intensity in t1, t1ce, t2 and flair, with a smooth bias field
and noise. The ground truth (tumour centre, radius, volume) is written to ``phantoms.json``.
"""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
from scipy.ndimage import gaussian_filter

from .brats import MODALITIES, NAMING

#: tissue -> intensity per modality (t1, t1ce, t2, flair); roughly the relative contrasts of real MRI
TISSUES = {
    "wm": (0.80, 0.80, 0.35, 0.45),
    "gm": (0.55, 0.58, 0.55, 0.55),
    "csf": (0.20, 0.20, 1.00, 0.10),
    "oedema": (0.45, 0.47, 0.85, 0.95),
    "enhancing": (0.50, 1.00, 0.65, 0.75),
    "necrotic": (0.25, 0.28, 0.90, 0.40),
}
LABELS = {"necrotic": 1, "oedema": 2, "enhancing": 4}


def _smooth_field(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance smooth random field (centred first: a large ``sigma`` leaves a near-constant offset)."""
    field = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    field = field - field.mean()
    return field / (field.std() + 1e-8)


def make_phantom(shape=(64, 64, 32), seed: int = 0, tumour: bool = True, tumour_radius: float | None = None,
                 noise: float = 0.02) -> tuple[np.ndarray, np.ndarray, dict]:
    """One phantom: ``image (4, *shape)`` float32 in t1, t1ce, t2, flair order, ``seg (*shape)`` uint8, ground truth.

    ``tumour_radius`` is the oedema radius as a fraction of the brain's in-plane semi-axis (random in
    [0.2, 0.45] when None).
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    semi = np.array([0.78, 0.70, 0.85]) * rng.uniform(0.93, 1.05, 3)
    r_brain = np.sqrt(sum((grid[i] / semi[i]) ** 2 for i in range(3)))
    wobble = 0.04 * _smooth_field(rng, shape, sigma=max(shape) / 10)
    brain = r_brain + wobble < 1.0
    tissue = np.full(shape, "", dtype=object)
    tissue[brain] = "gm"
    wm = r_brain + 0.04 * _smooth_field(rng, shape, sigma=max(shape) / 12) < 0.72
    tissue[brain & wm] = "wm"
    for side in (-1, 1):
        centre = np.array([0.0, 0.13 * side, 0.05])
        r_v = np.sqrt(((grid[0] - centre[0]) / 0.28) ** 2 + ((grid[1] - centre[1]) / 0.07) ** 2 + ((grid[2] - centre[2]) / 0.3) ** 2)
        tissue[brain & (r_v < 1.0)] = "csf"
    seg = np.zeros(shape, dtype=np.uint8)
    truth = {"seed": seed, "shape": list(shape), "tumour": bool(tumour)}
    if tumour:
        radius = float(tumour_radius if tumour_radius is not None else rng.uniform(0.2, 0.45))
        angle = rng.uniform(0, 2 * np.pi)
        dist = rng.uniform(0.25, 0.55)
        centre = np.array([dist * np.cos(angle) * semi[0], dist * np.sin(angle) * semi[1], rng.uniform(-0.3, 0.3) * semi[2]])
        scale = radius * semi[:2].mean()
        r_t = np.sqrt(sum((grid[i] - centre[i]) ** 2 for i in range(3))) / scale
        r_t = r_t + 0.12 * _smooth_field(rng, shape, sigma=max(shape) / 12)
        for name, limit in (("oedema", 1.0), ("enhancing", 0.55), ("necrotic", 0.35)):
            region = brain & (r_t < limit)
            tissue[region] = name
            seg[region] = LABELS[name]
        truth.update(centre_voxel=[float((c + 1) / 2 * (s - 1)) for c, s in zip(centre, shape)],
                     radius_voxels=float(scale * (min(shape[:2]) - 1) / 2), tumour_voxels=int((seg > 0).sum()))
    truth["brain_voxels"] = int(brain.sum())
    image = np.zeros((len(MODALITIES), *shape), dtype=np.float32)
    for name, values in TISSUES.items():
        region = tissue == name
        for c, value in enumerate(values):
            image[c][region] = value
    for c in range(len(MODALITIES)):
        image[c] = gaussian_filter(image[c], 0.6)
        bias = 1.0 + 0.06 * _smooth_field(rng, shape, sigma=max(shape) / 3)
        image[c] = image[c] * bias + noise * rng.standard_normal(shape)
    image = np.where(brain[None], np.clip(image, 0.01, None), 0.0).astype(np.float32)
    return image, seg, truth


def write_phantom_dataset(output_dir: str, num_cases: int = 12, shape=(64, 64, 32), seed: int = 0,
                          healthy_fraction: float = 0.25, naming: str = "brats2018", noise: float = 0.02) -> list[dict]:
    """Write ``num_cases`` phantoms to ``output_dir/<case>/`` in BraTS layout; return their ground truth.

    The first ``round(healthy_fraction * num_cases)`` cases have no tumour. Intensities are stored as int16
    (x1000) like BraTS; the voxel size is 1 mm with BraTS' LPS-style affine.
    """
    suffixes = NAMING[naming]
    n_healthy = int(round(healthy_fraction * num_cases))
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    truths = []
    for k in range(num_cases):
        case = f"Phantom_{k:03d}" if naming == "brats2018" else f"BraTS-PHA-{k:05d}-000"
        image, seg, truth = make_phantom(shape, seed=seed * 100_003 + k, tumour=k >= n_healthy, noise=noise)
        folder = os.path.join(output_dir, case)
        os.makedirs(folder, exist_ok=True)
        for c, modality in enumerate(MODALITIES):
            nib.save(nib.Nifti1Image(np.round(image[c] * 1000).astype(np.int16), affine),
                     os.path.join(folder, f"{case}{suffixes[modality]}.nii.gz"))
        nib.save(nib.Nifti1Image(seg, affine), os.path.join(folder, f"{case}{suffixes['seg']}.nii.gz"))
        truth["case"] = case
        truths.append(truth)
    with open(os.path.join(output_dir, "phantoms.json"), "w") as f:
        json.dump({"naming": naming, "seed": seed, "cases": truths}, f, indent=1)
    return truths
