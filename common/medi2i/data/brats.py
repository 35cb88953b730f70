"""Find BraTS cases on disk and load them as 4-channel volumes (channels t1, t1ce, t2, flair).

Layouts understood (the same code reads the phantoms, the real samples and full datasets):

* BraTS 2018-2021: ``<case>/<case>_{t1,t1ce,t2,flair}[.nii.gz|.nii|.png]`` and optional ``<case>_seg``,
  possibly nested (``HGG/``, ``LGG/``).
* BraTS 2023: ``<case>/<case>-{t1n,t1c,t2w,t2f}`` and optional ``<case>-seg``.
* MONAI Decathlon ``Task01_BrainTumour``: ``dataset.json`` with 4D images ordered FLAIR, T1w, T1gd, T2w
  (read with MONAI's Decathlon datalist loader; downloaded only on request).

A case is a dict ``{"case": id, "image": [t1, t1ce, t2, flair] | 4D path, "channel_index": [...]?,
"label": path?}`` that MONAI's ``LoadImaged`` understands.
"""

from __future__ import annotations

import glob
import os
import re

import numpy as np
import torch
from monai.transforms import LoadImage

from ..errors import InputError, check_finite, require

MODALITIES = ("t1", "t1ce", "t2", "flair")
#: file-name suffix of each modality (and the label map) per naming scheme
NAMING = {
    "brats2018": {"t1": "_t1", "t1ce": "_t1ce", "t2": "_t2", "flair": "_flair", "seg": "_seg"},
    "brats2023": {"t1": "-t1n", "t1ce": "-t1c", "t2": "-t2w", "flair": "-t2f", "seg": "-seg"},
}
EXTENSIONS = (".nii.gz", ".nii", ".png")
#: Decathlon Task01 channel order is FLAIR, T1w, T1gd, T2w; this picks t1, t1ce, t2, flair from it
DECATHLON_CHANNEL_INDEX = [1, 2, 3, 0]
DECATHLON_TASK = "Task01_BrainTumour"


def _strip_ext(name: str) -> tuple[str, str]:
    for ext in EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)], ext
    return name, ""


def case_from_folder(folder: str) -> dict | None:
    """Describe the BraTS case stored in ``folder`` (any naming scheme), or None if it holds none.

    Raises :class:`InputError` when the folder holds some modalities of a case but not all four.
    """
    files = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    for scheme in NAMING.values():
        found: dict[str, str] = {}
        for fname in files:
            stem, ext = _strip_ext(fname)
            for key, suffix in scheme.items():
                if ext and stem.endswith(suffix):
                    found[key] = os.path.join(folder, fname)
        modalities = [m for m in MODALITIES if m in found]
        if not modalities:
            continue
        missing = [m for m in MODALITIES if m not in found]
        if missing:
            raise InputError(folder, f"case is missing modality {', '.join(missing)} (found {', '.join(modalities)})")
        stem = _strip_ext(os.path.basename(found["flair"]))[0]
        case = {"case": stem[: -len(scheme["flair"])], "image": [found[m] for m in MODALITIES]}
        if "seg" in found:
            case["label"] = found["seg"]
        return case
    return None


def decathlon_cases(root: str, section: str = "training", download: bool = False) -> list[dict]:
    """Cases of MONAI Decathlon ``Task01_BrainTumour`` under ``root`` (``root`` or ``root/Task01_BrainTumour``).

    ``download=True`` fetches and extracts the task with MONAI first (about 7 GB); never done implicitly.
    """
    from monai.apps import download_and_extract
    from monai.apps.datasets import DecathlonDataset
    from monai.data import load_decathlon_datalist

    task_dir = root if os.path.basename(os.path.normpath(root)) == DECATHLON_TASK else os.path.join(root, DECATHLON_TASK)
    if download and not os.path.isdir(task_dir):
        url = DecathlonDataset.resource[DECATHLON_TASK]
        tarfile = os.path.join(os.path.dirname(task_dir), f"{DECATHLON_TASK}.tar")
        download_and_extract(url, tarfile, os.path.dirname(task_dir), DecathlonDataset.md5[DECATHLON_TASK])
    dataset_json = os.path.join(task_dir, "dataset.json")
    require(os.path.isfile(dataset_json), task_dir, "no dataset.json of a Decathlon task (pass download=True to fetch it)")
    items = load_decathlon_datalist(dataset_json, is_segmentation=section != "test", data_list_key=section, base_dir=task_dir)
    cases = []
    for item in items:
        image = item["image"] if isinstance(item, dict) else item
        case = {"case": _strip_ext(os.path.basename(image))[0], "image": image, "channel_index": DECATHLON_CHANNEL_INDEX}
        if isinstance(item, dict) and "label" in item:
            case["label"] = item["label"]
        cases.append(case)
    return cases


def find_cases(path: str) -> list[dict]:
    """Every BraTS case under ``path``: a case folder, a dataset folder (nested at any depth) or a Decathlon task."""
    require(os.path.exists(path), path, "no such file or folder")
    if os.path.isfile(os.path.join(path, "dataset.json")) and os.path.isdir(os.path.join(path, "imagesTr")):
        return decathlon_cases(path)
    if os.path.isdir(os.path.join(path, DECATHLON_TASK)):
        return decathlon_cases(path)
    case = case_from_folder(path)
    if case is not None:
        return [case]
    folders = sorted({os.path.dirname(p) for ext in EXTENSIONS for p in glob.glob(os.path.join(path, "**", f"*{ext}"), recursive=True)})
    cases = [c for c in (case_from_folder(f) for f in folders) if c is not None]
    require(len(cases) > 0, path, "no BraTS case found (expected <case>_{t1,t1ce,t2,flair}.nii.gz or BraTS 2023 / Decathlon layout)")
    return cases


def _load(path, where: str, reader=None) -> torch.Tensor:
    """``LoadImage`` (channel first, ``reader`` as MONAI takes it); a failure is one :class:`InputError` line."""
    try:
        return LoadImage(image_only=True, ensure_channel_first=True, reader=reader)(path)
    except Exception as err:  # noqa: BLE001 - the reader's own message is kept, on one line
        msg = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise InputError(where, f"cannot be read as an image ({msg[:200]})") from err


def load_case(case: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Load a case as a MetaTensor ``(4, H, W[, D])`` ordered t1, t1ce, t2, flair, and its label map or None.

    The image keeps its affine and meta data (MONAI ``LoadImage``). Shapes, channel counts and finiteness are
    checked; every failure is an :class:`InputError` naming the file. A PNG is one grey channel (RGB averaged, alpha
    ignored, as in :func:`~medi2i.data.load_mask`).
    """
    from .images2d import _single_2d

    where = case.get("case", case["image"])
    paths = case["image"] if isinstance(case["image"], (list, tuple)) else [case["image"]]
    for p in paths:
        require(os.path.isfile(p), p, "image file not found")
    parts = [_single_2d(_load(p, p), p) if str(p).lower().endswith(".png") else _load(p, p) for p in paths]
    for p, x in zip(paths, parts):
        require(x.shape[1:] == parts[0].shape[1:], p, f"shape {tuple(x.shape[1:])} differs from the first modality's "
                f"{tuple(parts[0].shape[1:])} ({os.path.basename(paths[0])})")
        check_finite(x, p)
    image = torch.cat(parts) if len(parts) > 1 else parts[0]
    if "channel_index" in case:
        require(image.shape[0] >= len(case["channel_index"]), paths[0], f"expected {len(case['channel_index'])} channels, found {image.shape[0]}")
        image = image[case["channel_index"]]
    if len(paths) > 1 and image.shape[0] != len(MODALITIES):
        # multi-channel files stacked per modality: keep one channel each
        require(image.shape[0] % len(MODALITIES) == 0, paths[0], f"cannot split {image.shape[0]} channels into modalities")
        image = image[:: image.shape[0] // len(MODALITIES)]
    png = "; a PNG is one grey image (RGB averaged, alpha ignored): give one PNG per modality" if str(paths[0]).lower().endswith(".png") else ""
    require(image.shape[0] == len(MODALITIES), paths[0], f"expected {len(MODALITIES)} channels (t1, t1ce, t2, flair), found {image.shape[0]}{png}")
    image = image.float()
    seg = None
    if case.get("label"):
        seg = _load(case["label"], case["label"])
        require(tuple(seg.shape[1:]) == tuple(image.shape[1:]), case["label"],
                f"label shape {tuple(seg.shape[1:])} differs from image shape {tuple(image.shape[1:])}")
        seg = seg[:1]
    return image, seg


def case_id(path: str) -> str:
    """A file-system-safe case id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path)


def brain_mask(image: torch.Tensor | np.ndarray, channel: int = MODALITIES.index("flair")):
    """Brain = non-zero voxels of the FLAIR channel (skull-stripped BraTS); keeps a channel dim of 1."""
    return image[channel : channel + 1] != 0
