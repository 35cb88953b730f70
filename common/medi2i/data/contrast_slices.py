"""Dataset folders -> 2D slices labelled by contrast, and their datalist (what ``train.json`` reads).

Sources (any mix):

* ``brats``: BraTS 2018-2023 / Decathlon cases (:func:`~medi2i.data.brats.find_cases`); t1 -> "T1",
  t1ce -> "T1 post-contrast", t2 -> "T2", flair -> "FLAIR".
* ``ixi``: IXI subjects (:func:`~medi2i.data.ixi.find_ixi_subjects`); T1, T2 and PD (a fifth class when used).
* ``fastmri``: fastMRI brain HDF5 files (:mod:`~medi2i.data.fastmri`), the paper's data.

NIfTI volumes are reoriented to RAS and resampled in-plane to ``pixdim`` mm (BraTS' 1 mm -> 2 mm is the paper's
downsampling by 2), or coarser where the field of view would not fit ``image_size`` (so a small network sees the
whole head, never a cropped centre); fastMRI images (no geometry in the file) are downsampled by ``fastmri_downsample`` (area).
Each volume is scaled to [0, 1] by the 99.5th percentile of its non-zero voxels (magnitude images), slices are
kept when their tissue (> ``tissue_threshold``) covers at least ``min_tissue_fraction`` of the volume's largest
tissue area, and padded or cropped to ``image_size``. Slices are written as ``(1, S, S, 1)`` NIfTI (affine kept);
the datalist stores each slice's contrast *name*, so the contrast set is chosen by the configs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, Resize, ResizeWithPadOrCrop, Spacing
from tqdm import tqdm

from ..errors import require
from .brats import MODALITIES, _load, find_cases, load_case
from .contrasts import canonical_contrast
from .datalist import split_cases
from .fastmri import find_fastmri_files, read_fastmri_volume
from .io import save_json, save_nifti
from .ixi import find_ixi_subjects
from .slices import ScaleBrainIntensity, axial_slice

SOURCES = ("brats", "ixi", "fastmri")
_RAS = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))


def _subjects(source: str, path: str, ixi_contrasts: Sequence[str]) -> list[dict]:
    """``[{"subject": id, "source": ..., "volumes": [(contrast, loader)]}]`` for one source folder."""
    if source == "brats":
        return [{"subject": c["case"], "source": source, "case": c} for c in find_cases(path)]
    if source == "ixi":
        return [{"subject": s["subject"], "source": source, "files": {k: s[k] for k in ixi_contrasts if k in s}}
                for s in find_ixi_subjects(path, tuple(ixi_contrasts))]
    require(source == "fastmri", source, f"unknown source (expected one of {', '.join(SOURCES)})")
    return [{"subject": os.path.basename(f)[: -len(".h5")], "source": source, "file": f} for f in find_fastmri_files(path)]


def fitting_spacing(volume: MetaTensor, pixdim: float, image_size: int) -> float:
    """``pixdim``, or the coarser in-plane spacing at which the volume's field of view fits ``image_size`` pixels."""
    extent = [float(n) * float(s) for n, s in zip(volume.shape[1:3], volume.pixdim[:2])]
    return max(float(pixdim), max(extent) / int(image_size))


def _volumes(subject: dict, pixdim: float, fastmri_downsample: int, image_size: int) -> Iterator[tuple[str, MetaTensor]]:
    """``(canonical contrast, (1, H, W, D) volume)`` of one subject, geometry normalised, not yet scaled."""

    def resample(volume: MetaTensor) -> MetaTensor:
        step = fitting_spacing(volume, pixdim, image_size)
        return Spacing(pixdim=(step, step, -1), mode="bilinear")(volume)

    if subject["source"] == "brats":
        image, _ = load_case(subject["case"])
        for c, name in enumerate(MODALITIES):
            yield canonical_contrast(name), resample(_RAS(image[c : c + 1]))
    elif subject["source"] == "ixi":
        for name, path in subject["files"].items():
            yield canonical_contrast(name), resample(_RAS(_load(path, path).float()))
    else:
        rss, acquisition = read_fastmri_volume(subject["file"])
        f = int(fastmri_downsample)
        volume = torch.from_numpy(rss).permute(1, 2, 0)[None]  # (1, H, W, slices)
        if f > 1:
            volume = Resize((volume.shape[1] // f, volume.shape[2] // f, -1), mode="area")(volume, lazy=False).as_tensor()
        yield canonical_contrast(acquisition), MetaTensor(volume, affine=torch.diag(torch.tensor([f, f, 1.0, 1.0], dtype=torch.float64)))


def tissue_slices(volume: torch.Tensor, tissue_threshold: float, min_tissue_fraction: float) -> list[int]:
    """Axial indices of a scaled ``(1, H, W, D)`` volume whose tissue area is at least ``min_tissue_fraction`` of
    the largest one."""
    area = (volume[0] > tissue_threshold).sum(dim=(0, 1)).float()
    if float(area.max()) == 0:
        return []
    return [int(k) for k in torch.nonzero(area >= min_tissue_fraction * area.max()).flatten()]


def build_contrast_datalist(sources: dict, output_dir: str, image_size: int = 160, pixdim: float = 2.0,
                            fastmri_downsample: int = 2, contrasts: Sequence[str] | None = None,
                            ixi_contrasts: Sequence[str] = ("T1", "T2", "PD"), tissue_threshold: float = 0.05,
                            min_tissue_fraction: float = 0.3, val_fraction: float = 0.1, test_fraction: float = 0.1,
                            seed: int = 0, percentile: float = 99.5) -> str:
    """Write ``output_dir/slices/`` and ``output_dir/datalist.json`` (training/validation/test split by subject) from
    ``sources`` = ``{"brats": path(s), "ixi": path(s), "fastmri": path(s)}``; return the datalist path.
    ``contrasts`` (canonical names) keeps only those contrasts; None keeps all."""
    require(len(sources) > 0, "sources", f"no dataset folder given (keys: {', '.join(SOURCES)})")
    subjects = []
    for source, paths in sources.items():
        for path in [paths] if isinstance(paths, str) else paths:
            subjects += _subjects(source, str(path), ixi_contrasts)
    keep = None if contrasts is None else {canonical_contrast(c).casefold() for c in contrasts}
    scale, fit = ScaleBrainIntensity(percentile), ResizeWithPadOrCrop((image_size, image_size, -1))
    datalist: dict = {"description": "2D slices labelled by contrast", "image_size": image_size, "pixdim": pixdim,
                      "sources": {k: v if isinstance(v, str) else list(v) for k, v in sources.items()}, "seed": seed}
    found: set[str] = set()
    for section, members in split_cases(subjects, val_fraction, test_fraction, seed).items():
        entries = []
        for subject in tqdm(members, desc=f"contrast slices ({section})", unit="subject"):
            folder = os.path.join(output_dir, "slices", subject["subject"])
            for contrast, volume in _volumes(subject, pixdim, fastmri_downsample, image_size):
                if keep is not None and contrast.casefold() not in keep:
                    continue
                volume = scale(volume)
                tag = contrast.replace(" ", "_").replace("-", "")
                for k in tissue_slices(volume, tissue_threshold, min_tissue_fraction):
                    os.makedirs(folder, exist_ok=True)
                    path = save_nifti(fit(axial_slice(volume, k)), os.path.join(folder, f"{subject['subject']}_{tag}_z{k:03d}.nii.gz"))
                    entries.append({"image": os.path.relpath(path, output_dir), "contrast": contrast,
                                    "subject": subject["subject"], "source": subject["source"], "slice": k})
                    found.add(contrast)
        datalist[section] = entries
    require(len(found) > 0, "sources", "no slice with tissue found in the given folders")
    datalist["contrasts"] = sorted(found)
    path = os.path.join(output_dir, "datalist.json")
    save_json(datalist, path)
    return path


def contrast_counts(entries: list[dict]) -> dict[str, int]:
    """Slices per contrast name."""
    names, counts = np.unique([e["contrast"] for e in entries], return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts)}


def contrast_phantoms(folder: str, num_cases: int = 24, shape=(64, 64, 32), seed: int = 0, image_size: int = 64,
                      pixdim: float = 1.0, healthy_fraction: float = 0.5, min_tissue_fraction: float = 0.5) -> str:
    """Demo data: phantom BraTS cases (:func:`~medi2i.data.make_phantom`, four contrasts with known tissue
    intensities) written in the BraTS layout and read back as contrast-labelled slices; returns the dataset_dir."""
    from .phantoms import write_phantom_dataset

    slices = os.path.join(folder, "slices")
    if not os.path.isfile(os.path.join(slices, "datalist.json")):
        write_phantom_dataset(os.path.join(folder, "phantoms"), num_cases=num_cases, shape=shape, seed=seed,
                              healthy_fraction=healthy_fraction)
        build_contrast_datalist({"brats": os.path.join(folder, "phantoms")}, slices, image_size=image_size, pixdim=pixdim,
                                min_tissue_fraction=min_tissue_fraction, seed=seed)
    return slices
