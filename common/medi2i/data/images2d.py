"""2D single-channel images for the Med-cDiff bundles: readers, patient-wise normalisation, slice datalists.

Layouts understood:

* MR volumes (``kind="volumes"``): any folder holding NIfTI volumes (``*.nii``, ``*.nii.gz``) and/or DICOM series
  (a folder of ``*.dcm`` files, read as one volume through ITK); MONAI Decathlon ``Task05_Prostate``
  (``dataset.json``; the T2 channel, index 0, is kept). A case = one volume = one patient.
* Radiographs (``kind="radiographs"``): PNG/JPEG files, flat (NIH ChestX-ray14 ``<patient>_<visit>.png``) or in
  the Kermany layout ``{train,test,val}/{NORMAL,PNEUMONIA}/*.jpeg`` (the class is kept as ``label_name``).

Every image is normalised patient-wise to [-1, 1] (a volume as a whole, a radiograph on its own: the intensity
percentiles ``percentiles`` map to -1 and 1, clipped; (0, 100) is min-max), sliced axially, resized to
``image_size`` x ``image_size`` and written as a ``(1, S, S, 1)`` NIfTI slice that keeps its position's affine.
"""

from __future__ import annotations

import glob
import os
import re

import numpy as np
import torch
from monai.transforms import MapTransform, Resize, ScaleIntensityRangePercentiles
from monai.data import MetaTensor
from tqdm import tqdm

from ..errors import check_finite, require
from .datalist import split_cases
from .io import save_json, save_nifti
from .brats import _load
from .slices import as_slab, axial_slice

VOLUME_EXTENSIONS = (".nii.gz", ".nii")
PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg")
KERMANY_CLASSES = ("NORMAL", "PNEUMONIA")
PROSTATE_TASK = "Task05_Prostate"


def _stem(path: str) -> str:
    name = os.path.basename(os.path.normpath(path))
    for ext in VOLUME_EXTENSIONS + PICTURE_EXTENSIONS + (".dcm",):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def find_volumes(path: str) -> list[dict]:
    """``[{"case", "image", "channel_index"?}]``: NIfTI volumes and DICOM series folders under ``path``, or the
    training cases of a Decathlon ``Task05_Prostate`` (T2 channel)."""
    require(os.path.exists(path), path, "no such file or folder")
    task = path if os.path.isfile(os.path.join(path, "dataset.json")) else os.path.join(path, PROSTATE_TASK)
    if os.path.isfile(os.path.join(task, "dataset.json")) and os.path.isdir(os.path.join(task, "imagesTr")):
        from monai.data import load_decathlon_datalist

        items = load_decathlon_datalist(os.path.join(task, "dataset.json"), True, "training", base_dir=task)
        return [{"case": _stem(it["image"]), "image": it["image"], "channel_index": 0} for it in items]
    if os.path.isfile(path):
        return [{"case": _stem(path), "image": path}]
    files = sorted(f for ext in VOLUME_EXTENSIONS for f in glob.glob(os.path.join(path, "**", f"*{ext}"), recursive=True))
    series = sorted({os.path.dirname(f) for f in glob.glob(os.path.join(path, "**", "*.dcm"), recursive=True)})
    cases = [{"case": _stem(f), "image": f} for f in files]
    for folder in [s for s in series if not _dicom_copy_of_nifti(s, files)]:
        parent = os.path.basename(os.path.dirname(folder))
        cases.append({"case": f"{parent}_{os.path.basename(folder)}" if parent else os.path.basename(folder), "image": folder})
    require(len(cases) > 0, path, "no NIfTI volume (*.nii.gz) or DICOM series (folder of *.dcm) found")
    return cases


def _dicom_copy_of_nifti(series: str, niftis: list[str]) -> bool:
    """Whether the DICOM ``series`` holds the same image as a NIfTI file beside it (in its folder or the folder
    above, as a converted copy usually is): same voxel grid and affine (within 0.01 mm) and same voxel values."""
    near = [f for f in niftis if os.path.dirname(f) in (series, os.path.dirname(series))]
    if not near:
        return False
    dicom = _load(series, series, reader="ITKReader")
    for nifti in near:
        image = _load(nifti, nifti)
        if image.shape == dicom.shape and torch.allclose(image.affine.double(), dicom.affine.double(), atol=1e-2) \
                and torch.allclose(image.float(), dicom.float(), atol=1e-3, rtol=1e-4):
            print(f"{series}: DICOM copy of {nifti}, read once")
            return True
    return False


def find_radiographs(path: str) -> list[dict]:
    """``[{"case", "image", "patient", "label_name"?, "split"?}]`` for every PNG/JPEG under ``path``.

    NIH ChestX-ray14 names ``<patient>_<visit>.png`` give the patient (so a patient's visits stay in one section);
    Kermany's ``{train,test,val}/{NORMAL,PNEUMONIA}`` folders give the split and the class."""
    require(os.path.exists(path), path, "no such file or folder")
    files = [path] if os.path.isfile(path) else sorted(
        f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True) if f.lower().endswith(PICTURE_EXTENSIONS))
    require(len(files) > 0, path, "no radiograph found (expected *.png, *.jpg or *.jpeg files)")
    items = []
    for f in files:
        stem = _stem(f)
        nih = re.fullmatch(r"(\d{8})_\d{3}", stem)
        kermany = re.match(r"(person\d+)_", stem)
        item = {"case": stem, "image": f, "patient": nih[1] if nih else kermany[1] if kermany else stem}
        parts = os.path.normpath(os.path.relpath(f, path if os.path.isdir(path) else os.path.dirname(f))).split(os.sep)
        if len(parts) >= 3 and parts[-2].upper() in KERMANY_CLASSES:
            item.update(label_name=parts[-2].upper(), split=parts[-3].lower())
        items.append(item)
    return items


def load_image(case: dict) -> torch.Tensor:
    """A case as a single-channel MetaTensor ``(1, H, W[, D])`` (DICOM series and NIfTI through ITK/nibabel,
    pictures through PIL; RGB is averaged to grey). Failures are one-line :class:`InputError` s naming the file."""
    path = case["image"]
    require(os.path.exists(path), path, "image file or DICOM folder not found")
    image = _load(path, path, reader="ITKReader" if os.path.isdir(path) else None)
    if "channel_index" in case:
        image = image[case["channel_index"] : case["channel_index"] + 1]
    elif image.shape[0] in (3, 4) and path.lower().endswith(PICTURE_EXTENSIONS):
        image = image[:3].mean(0, keepdim=True)
    require(image.shape[0] == 1, path, f"expected a single-channel (grey) image, found {image.shape[0]} channels")
    require(image.ndim in (3, 4), path, f"expected a 2D image or a 3D volume, got shape {tuple(image.shape[1:])}")
    check_finite(image, path)
    return image.float()


def normalise(image: torch.Tensor, percentiles=(0.0, 100.0)) -> torch.Tensor:
    """Patient-wise scaling to [-1, 1]: the ``percentiles`` of the whole image/volume map to -1 and 1, clipped."""
    lo, hi = percentiles
    require(float(image.max()) > float(image.min()), getattr(image, "meta", {}).get("filename_or_obj", "image"),
            "is constant; nothing to normalise")
    return ScaleIntensityRangePercentiles(lo, hi, -1.0, 1.0, clip=True, relative=False)(image)


def image_slices(image: torch.Tensor, image_size: int, min_std: float = 0.0):
    """Yield ``(index, (1, S, S, 1) slice)`` of a normalised image: axial slices of a volume (resized in plane),
    or the one slice of a 2D image; slices whose standard deviation is below ``min_std`` (empty) are skipped."""
    volume = image if image.ndim == 4 else as_slab(image)
    resize = Resize((image_size, image_size, 1), mode="area")
    for k in range(volume.shape[-1]):
        sl = resize(axial_slice(volume, k))
        if float(sl.std()) >= min_std:
            yield k, sl


class Normalised(MapTransform):
    """Dictionary transform for inputs given one by one: single grey channel, resized to ``image_size``, scaled to
    [-1, 1] (patient-wise = per image here) unless the item is flagged ``normalised`` (datalist slices are).

    ``upsize_mode``: interpolation when the image is smaller than ``image_size`` ("area" shrinks). With
    ``source_key`` the input as loaded (values, affine, shape) and the intensities mapped to -1 and 1 are kept under
    ``<source_key>`` for :class:`~medi2i.data.Restored`. A mask under ``mask_key`` (a user's hole mask) must have the
    image's in-plane size; it is binarised (non-zero = 1) and resized with the image (nearest neighbour).

    A volume (``(C, H, W, D)``, D > 1: a prostate T2 series sent to MONAI Label) gives its axial slice
    ``slice_index`` (``"middle"`` or an index; a volume mask gives the same slice), kept with that slice's own affine,
    so the restored prediction lies on the input's grid at that slice's position.
    """

    def __init__(self, keys="image", image_size: int = 128, percentiles=(0.0, 100.0), flag_key: str = "normalised",
                 upsize_mode: str = "area", source_key: str | None = None, mask_key: str | None = None,
                 slice_index: int | str = "middle"):
        super().__init__(keys)
        self.slice_index = slice_index
        self.image_size, self.percentiles, self.flag_key = int(image_size), percentiles, flag_key
        self.upsize_mode, self.source_key, self.mask_key = upsize_mode, source_key, mask_key

    def _resize(self, image: torch.Tensor, mode: str) -> torch.Tensor:
        if tuple(image.shape[1:]) == (self.image_size,) * 2:
            return image
        return Resize((self.image_size, self.image_size), mode=mode)(image)

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            loaded = d[key]
            where = getattr(loaded, "meta", {}).get("filename_or_obj", key)
            index = None
            if loaded.ndim == 4 and loaded.shape[-1] > 1:
                loaded, index = _volume_slice(loaded, self.slice_index, where)
            image = _single_2d(loaded, where)
            check_finite(image, where)
            shape = tuple(image.shape[1:])
            up = min(shape) < self.image_size and self.upsize_mode != "area"
            image = self._resize(image.float(), self.upsize_mode if up else "area")
            lo, hi = (-1.0, 1.0) if d.get(self.flag_key) else _percentile_range(image, self.percentiles)
            if not d.get(self.flag_key):
                image = normalise(image, self.percentiles)
            d[key] = image.float()
            if self.source_key:
                d[self.source_key] = {"image": torch.as_tensor(_single_2d(loaded, where)).float(), "ndim": loaded.ndim,
                                      "affine": getattr(loaded, "affine", torch.eye(4, dtype=torch.float64)).clone(),
                                      "range": (lo, hi)}
            if self.mask_key and d.get(self.mask_key) is not None:
                mask_file = getattr(d[self.mask_key], "meta", {}).get("filename_or_obj") or self.mask_key
                mask = torch.as_tensor(d[self.mask_key])
                if index is not None and mask.ndim == 4 and mask.shape[-1] > 1:
                    mask = mask[..., index:index + 1]
                mask = _single_2d(mask, mask_file)
                require(tuple(mask.shape[1:]) == shape, mask_file,
                        f"mask is {tuple(mask.shape[1:])}, image {where} is {shape}")
                mask = (mask != 0).float()
                if self.source_key:
                    d[self.source_key]["mask"] = mask
                d[self.mask_key] = self._resize(mask, "nearest")
        return d


def _volume_slice(volume: torch.Tensor, slice_index: int | str, where):
    """Axial slice ``slice_index`` (``"middle"`` or an index) of ``(C, H, W, D)`` as ``(C, H, W, 1)`` with its own
    affine (the volume's, moved to that slice); return it and the index."""
    depth = volume.shape[-1]
    index = depth // 2 if slice_index in (None, "middle") else int(slice_index)
    require(0 <= index < depth, where, f"slice_index {slice_index} is outside the volume's {depth} slices")
    affine = torch.as_tensor(getattr(volume, "affine", torch.eye(4, dtype=torch.float64))).double().clone()
    affine[:3, 3] = affine[:3, 3] + affine[:3, 2] * index
    return MetaTensor(torch.as_tensor(volume)[..., index:index + 1].clone(), affine=affine), index


def _single_2d(image: torch.Tensor, where) -> torch.Tensor:
    """``(C, H, W)`` or a one-slice ``(C, H, W, 1)`` as a single grey channel ``(1, H, W)`` (RGB averaged)."""
    if image.ndim == 4:
        require(image.shape[-1] == 1, where, f"expected a 2D image or one slice, got shape {tuple(image.shape[1:])}")
        image = image[..., 0]
    if image.shape[0] in (3, 4):
        image = image[:3].mean(0, keepdim=True)
    require(image.ndim == 3 and image.shape[0] == 1, where, f"expected a single-channel 2D image, got shape {tuple(image.shape)}")
    return image


def _percentile_range(image: torch.Tensor, percentiles) -> tuple[float, float]:
    """The intensities :func:`normalise` maps to -1 and 1."""
    values = np.percentile(torch.as_tensor(image).detach().cpu().numpy(), list(percentiles))
    return float(values[0]), float(values[1])


def build_image_datalist(dataset_dir: str, output_dir: str, kind: str = "volumes", image_size: int = 128,
                         val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                         percentiles=(0.0, 100.0), min_std: float = 0.05) -> str:
    """Write ``output_dir/datalist.json`` (training/validation/test slices, split by patient) and the slices;
    return the datalist path. ``kind`` is ``"volumes"`` (MR) or ``"radiographs"`` (X-ray pictures)."""
    require(kind in ("volumes", "radiographs"), "kind", f"must be 'volumes' or 'radiographs', got {kind!r}")
    cases = find_volumes(dataset_dir) if kind == "volumes" else find_radiographs(dataset_dir)
    patients: dict[str, list[dict]] = {}
    for case in cases:
        patients.setdefault(case.get("patient", case["case"]), []).append(case)
    groups = [{"patient": p, "cases": c} for p, c in patients.items()]
    sections = split_cases(groups, val_fraction, test_fraction, seed)
    datalist: dict = {"description": f"{kind} of {os.path.abspath(dataset_dir)}, [-1, 1] patient-wise",
                      "image_size": image_size, "seed": seed, "percentiles": list(percentiles)}
    for section, members in sections.items():
        entries = []
        for case in tqdm([c for g in members for c in g["cases"]], desc=f"slices ({section})", unit="image"):
            image = normalise(load_image(case), percentiles)
            folder = os.path.join(output_dir, "slices", case["case"])
            os.makedirs(folder, exist_ok=True)
            for k, sl in image_slices(image, image_size, min_std):
                path = save_nifti(sl, os.path.join(folder, f"{case['case']}_z{k:03d}.nii.gz"))
                entry = {"image": os.path.relpath(path, output_dir), "case": case["case"], "slice": k, "normalised": 1}
                entry.update({key: case[key] for key in ("patient", "label_name") if key in case})
                entries.append(entry)
        datalist[section] = entries
    require(len(datalist["training"]) > 0, dataset_dir, "no training slice (too few images for the split?)")
    return save_json(datalist, os.path.join(output_dir, "datalist.json"))

