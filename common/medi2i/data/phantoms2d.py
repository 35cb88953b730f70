"""Synthetic prostate T2 volumes and chest radiographs, deterministic by seed, for the Med-cDiff demo and tests.

* Pelvis (T2-like): body ellipse with a bright fat rim, muscle, a bright bladder, a dark rectum and a prostate with
  a bright peripheral zone around a darker transition zone; sizes change along the slices. NIfTI volumes.
* Chest (frontal radiograph): bright body, dark lungs crossed by bright ribs, spine, heart and clavicles.
  8-bit PNGs named like NIH ChestX-ray14 (``<patient>_000.png``).

Edges are sharp (piecewise-constant tissues, light blur) with mild texture, so that a learned restoration can beat
interpolation and smoothing on them.
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from .images2d import build_image_datalist


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def make_pelvis_phantom(shape=(64, 64, 16), seed: int = 0, noise: float = 0.02) -> np.ndarray:
    """One T2-like pelvis volume ``(H, W, D)`` in [0, 1]."""
    rng = np.random.default_rng(seed)
    h, w, depth = shape
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    body = (0.9 * rng.uniform(0.93, 1.0), 0.95 * rng.uniform(0.93, 1.0))
    prostate = np.array([0.25, 0.3]) * rng.uniform(0.8, 1.2, 2)
    centre = (rng.uniform(0.0, 0.12), rng.uniform(-0.08, 0.08))
    texture = gaussian_filter(rng.standard_normal((h, w, depth)), 1.0)
    volume = np.zeros((h, w, depth), dtype=np.float32)
    for k in range(depth):
        z = 2 * k / max(depth - 1, 1) - 1
        scale = np.sqrt(max(0.0, 1 - (z / 1.15) ** 2))
        img = np.zeros((h, w), dtype=np.float32)
        img[_ellipse(yy, xx, 0, 0, *body)] = 0.75  # fat rim
        img[_ellipse(yy, xx, 0, 0, body[0] - 0.1, body[1] - 0.1)] = 0.35  # muscle
        img[_ellipse(yy, xx, -0.45, 0, 0.28 * (1.2 - 0.4 * z), 0.4)] = 0.95  # bladder (above)
        img[_ellipse(yy, xx, centre[0] + 0.42, centre[1], 0.13, 0.16)] = 0.1  # rectum (behind)
        if scale > 0.2:
            ry, rx = prostate * scale
            img[_ellipse(yy, xx, *centre, ry, rx)] = 0.7  # peripheral zone
            img[_ellipse(yy, xx, centre[0] - 0.25 * ry, centre[1], 0.6 * ry, 0.65 * rx)] = 0.4  # transition zone
            img[_ellipse(yy, xx, centre[0] - 0.1 * ry, centre[1], 0.12 * ry, 0.12 * rx)] = 0.2  # urethra
        img = img * (1 + 0.08 * texture[..., k]) * (img > 0)
        volume[..., k] = gaussian_filter(img, 0.5) + noise * rng.standard_normal((h, w))
    return np.clip(volume, 0, 1)


def make_chest_phantom(size: int = 128, seed: int = 0, noise: float = 0.01) -> np.ndarray:
    """One frontal chest radiograph ``(size, size)`` in [0, 1] (lungs dark, bones bright)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    img = np.full((size, size), 0.15, dtype=np.float32)
    img[_ellipse(yy, xx, 0.1, 0, 1.05, 0.85 * rng.uniform(0.9, 1.0))] = 0.6  # body
    lung_h, lung_w = 0.62 * rng.uniform(0.9, 1.1), 0.3 * rng.uniform(0.9, 1.1)
    for side in (-1, 1):
        lung = _ellipse(yy, xx, -0.05, side * 0.37, lung_h, lung_w)
        img[lung] = 0.22
        for r in range(7):  # ribs: bright arcs across the lung
            y0 = -0.6 + r * 0.18 + rng.uniform(-0.02, 0.02)
            arc = np.abs(yy - (y0 + 0.25 * (xx * side) ** 2)) < 0.025
            img[arc & lung] = 0.5
    img[_ellipse(yy, xx, 0.2, 0.08, 0.3, 0.25 * rng.uniform(0.85, 1.15))] = 0.55  # heart
    img[(np.abs(xx) < 0.07) & (yy > -0.9)] = 0.8  # spine
    for side in (-1, 1):  # clavicles
        img[(np.abs(yy - (-0.68 + 0.15 * np.abs(xx))) < 0.03) & (np.abs(xx) > 0.08) & (np.abs(xx) < 0.7) & (np.sign(xx) == side)] = 0.8
    texture = gaussian_filter(rng.standard_normal((size, size)), 1.5)
    img = gaussian_filter(img * (1 + 0.06 * texture), 0.6) + noise * rng.standard_normal((size, size))
    return np.clip(img, 0, 1)


def write_pelvis_phantoms(folder: str, num_cases: int = 8, shape=(64, 64, 16), seed: int = 0) -> list[str]:
    """``<folder>/Phantom_<k>_t2w.nii.gz`` (int16 x1000, 0.5 x 0.5 x 3 mm like PROSTATEx T2; stored column-first like
    DICOM read through ITK, so that every source displays the same way)."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for k in range(num_cases):
        volume = make_pelvis_phantom(tuple(shape), seed * 100_003 + k)
        path = os.path.join(folder, f"Phantom_{k:03d}_t2w.nii.gz")
        nib.save(nib.Nifti1Image(np.round(volume.transpose(1, 0, 2) * 1000).astype(np.int16), np.diag([0.5, 0.5, 3.0, 1.0])), path)
        paths.append(path)
    return paths


def write_chest_phantoms(folder: str, num_cases: int = 8, size: int = 128, seed: int = 0) -> list[str]:
    """``<folder>/<patient>_000.png``, 8-bit grey, in the flat NIH ChestX-ray14 layout."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for k in range(num_cases):
        image = make_chest_phantom(size, seed * 100_003 + k)
        path = os.path.join(folder, f"{90_000_000 + k:08d}_000.png")
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def phantom_datalist(folder: str, kind: str = "pelvis", num_cases: int = 8, shape=(64, 64, 16), image_size: int = 64,
                     seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15) -> str:
    """Write phantoms (``kind`` "pelvis" or "chest") and their slice datalist; return the dataset_dir (recipes)."""
    slices = os.path.join(folder, "slices")
    if not os.path.isfile(os.path.join(slices, "datalist.json")):
        raw = os.path.join(folder, "phantoms")
        if kind == "pelvis":
            write_pelvis_phantoms(raw, num_cases, shape, seed)
        else:
            write_chest_phantoms(raw, num_cases, shape[0], seed)
        build_image_datalist(raw, slices, "volumes" if kind == "pelvis" else "radiographs", image_size,
                             val_fraction, test_fraction, seed)
    return slices
