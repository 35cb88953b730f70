"""Paired multi-modal volumes (one channel per MR sequence) for whole-volume 3D translation (ALDM).

A datalist entry is ``{"case": id, "image": [path per modality]}`` (or one 4D path plus ``channel_index``,
MONAI Decathlon ``Task01_BrainTumour``), modalities in the order the bundle lists them:

* BraTS 2018-2023 and Decathlon (:func:`~medi2i.data.brats.find_cases`): any of ``t1, t1ce, t2, flair``;
* IXI (:func:`~medi2i.data.ixi.find_ixi_subjects`): any of ``T1, T2, PD``. IXI sequences are separate
  acquisitions; :class:`LoadMultiModald` resamples each onto the first modality's grid through their affines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, ResampleToMatch, Resized
from monai.utils import TraceKeys

from ..errors import InputError, check_finite, require
from .brats import MODALITIES, _load, find_cases
from .datalist import _relative_case, load_section, split_cases
from .io import save_json
from .ixi import IXI_CONTRASTS, find_ixi_subjects
from .phantoms import write_phantom_dataset


def multimodal_cases(path: str, modalities: Sequence[str] = MODALITIES) -> list[dict]:
    """Every case under ``path`` that has all ``modalities``, as datalist entries (BraTS/Decathlon or IXI names)."""
    modalities = list(modalities)
    if all(m in MODALITIES for m in modalities):
        cases = []
        for case in find_cases(path):
            if isinstance(case["image"], list):
                cases.append({"case": case["case"], "image": [case["image"][MODALITIES.index(m)] for m in modalities]})
            else:  # Decathlon 4D file: pick channels
                index = [case["channel_index"][MODALITIES.index(m)] for m in modalities]
                cases.append({"case": case["case"], "image": case["image"], "channel_index": index})
        return cases
    require(all(m in IXI_CONTRASTS for m in modalities), "modalities",
            f"{modalities} are neither BraTS ({', '.join(MODALITIES)}) nor IXI ({', '.join(IXI_CONTRASTS)}) sequence names")
    subjects = [s for s in find_ixi_subjects(path, modalities) if all(m in s for m in modalities)]
    require(len(subjects) > 0, path, f"no IXI subject has all of {', '.join(modalities)}")
    return [{"case": s["subject"], "image": [s[m] for m in modalities]} for s in subjects]


def volume_datalist(dataset_dir: str, section: str = "training", modalities: Sequence[str] = MODALITIES,
                    val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0) -> list[dict]:
    """Entries of ``section`` (``training``, ``validation``, ``test``): from ``<dataset_dir>/datalist.json`` when
    it exists, else from the cases found under ``dataset_dir`` split by case with ``seed``."""
    datalist = os.path.join(dataset_dir, "datalist.json")
    if os.path.isfile(datalist):
        return load_section(datalist, section)
    sections = split_cases(multimodal_cases(dataset_dir, modalities), val_fraction, test_fraction, seed)
    require(len(sections[section]) > 0, dataset_dir, f"too few cases for a '{section}' section")
    return sections[section]


def write_volume_datalist(dataset_dir: str, modalities: Sequence[str] = MODALITIES, val_fraction: float = 0.1,
                          test_fraction: float = 0.1, seed: int = 0) -> str:
    """Write ``<dataset_dir>/datalist.json`` (paths relative to it) with training/validation/test sections."""
    sections = split_cases(multimodal_cases(dataset_dir, modalities), val_fraction, test_fraction, seed)
    content = {"description": "paired multi-modal volumes", "modalities": list(modalities), "seed": seed}
    content.update({name: [_relative_case(c, dataset_dir) for c in cases] for name, cases in sections.items()})
    return save_json(content, os.path.join(dataset_dir, "datalist.json"))


def brats_volume_phantoms(folder: str, num_cases: int = 12, shape=(64, 64, 48), seed: int = 0,
                          modalities: Sequence[str] = MODALITIES, val_fraction: float = 0.15,
                          test_fraction: float = 0.15) -> str:
    """Recipe generator: 3D BraTS-like phantoms and their volume datalist; returns the dataset_dir."""
    if not os.path.isfile(os.path.join(folder, "datalist.json")):
        write_phantom_dataset(folder, num_cases=num_cases, shape=shape, seed=seed, healthy_fraction=0.25)
        write_volume_datalist(folder, modalities, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return folder


def load_multimodal(paths: str | Sequence[str], channel_index: Sequence[int] | None = None, min_size: int = 1) -> MetaTensor:
    """``(M, *spatial)`` float MetaTensor, one channel per path (or the ``channel_index`` channels of one file),
    every modality resampled onto the first one's grid when their grids differ; affine of the first kept.
    Each file must hold one 3D volume (unless ``channel_index``) whose sides are at least ``min_size``."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    for p in paths:
        require(os.path.isfile(str(p)), p, "image file not found")
    parts = [_load(str(p), p) for p in paths]
    if channel_index is not None:
        require(parts[0].shape[0] > max(channel_index), paths[0], f"expected at least {max(channel_index) + 1} channels, found {parts[0].shape[0]}")
        parts = [parts[0][list(channel_index)]]
    reference = parts[0]
    for p, part in zip(paths, parts):
        require(part.ndim == 4, p, f"expected a 3D volume, got shape {tuple(part.shape[1:])}")
        require(channel_index is not None or part.shape[0] == 1, p, f"expected 1 channel per modality file, found {part.shape[0]}")
        check_size(part, p, min_size)
        check_finite(part, p)
    aligned = [reference]
    for part in parts[1:]:
        same = part.shape[1:] == reference.shape[1:] and torch.allclose(part.affine, reference.affine, atol=1e-3)
        aligned.append(part if same else ResampleToMatch(mode="bilinear", padding_mode="zeros")(part, reference))
    image = torch.cat([a.as_tensor().float() for a in aligned]) if len(aligned) > 1 else reference.as_tensor().float()
    return MetaTensor(image, meta=reference.meta)


class LoadMultiModald(MapTransform):
    """Dictionary transform: ``data[key]`` (path list, or a 4D path with ``data["channel_index"]``) ->
    :func:`load_multimodal` volume."""

    def __init__(self, keys="image", min_size: int = 1, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.min_size = int(min_size)

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = load_multimodal(d[key], d.get("channel_index"), self.min_size)
        return d


def check_size(image: torch.Tensor, where, min_size: int) -> None:
    """One-line error for a volume with a side shorter than ``min_size`` voxels (the network's downsampling)."""
    if any(s < min_size for s in image.shape[1:]):
        raise InputError(where, f"volume {'x'.join(map(str, image.shape[1:]))} is smaller than the network's "
                                f"downsampling factor {min_size} along a side")


class FitWithind(Resized):
    """Shrink a volume (keeping its aspect ratio) until it fits within ``roi_size``, so that the crop/pad to the
    network size that follows cuts nothing: real 240x240x155 BraTS cases reach a small demo network whole.
    Volumes that fit already are untouched; ``enabled=False`` (the paper's recipe: crop/pad only) does nothing.
    Invertible by MONAI ``Invertd`` (trilinear back to the input's shape)."""

    def __init__(self, keys, roi_size: Sequence[int], enabled: bool = True, allow_missing_keys: bool = False):
        super().__init__(keys, spatial_size=list(roi_size), mode="trilinear", anti_aliasing=True,
                         allow_missing_keys=allow_missing_keys)
        self.roi_size, self.enabled = [int(r) for r in roi_size], bool(enabled)

    def __call__(self, data, lazy=None):
        d = dict(data)
        key = next(self.key_iterator(d), None)
        shape = [int(n) for n in d[key].shape[1:]] if key is not None else self.roi_size
        scale = min(r / n for r, n in zip(self.roi_size, shape))
        if not self.enabled or scale >= 1.0:
            return d
        self.resizer.spatial_size = [max(1, round(n * scale)) for n in shape]
        return super().__call__(d, lazy)

    def inverse(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            ops = getattr(d[key], "applied_operations", [])
            if ops and ops[-1].get(TraceKeys.ID) == id(self.resizer):  # only what this transform did
                d[key] = self.resizer.inverse(d[key])
        return d
