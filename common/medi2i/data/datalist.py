"""Dataset folder -> slice datalist JSON (the one data flow of the collection).

Reads every BraTS case once, scales it on brain tissue, writes its brain slices as ``(4, S, S, 1)`` NIfTI files
(affine of the slice's position kept) with their label slices, and writes a datalist with case-level
training/validation/test sections whose entries carry ``relative_tumour_size`` and ``has_tumour``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
from monai.data import load_decathlon_datalist
from tqdm import tqdm

from ..errors import InputError, check_file, require
from .brats import find_cases, load_case
from .io import save_json, save_nifti
from .slices import ScaleBrainIntensity, iter_slices


def split_cases(cases: list[dict], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[dict]]:
    """Shuffle cases with ``seed`` and split them (by case, so no patient is in two sections)."""
    order = np.random.default_rng(seed).permutation(len(cases))
    n_test = int(round(test_fraction * len(cases)))
    n_val = int(round(val_fraction * len(cases)))
    if len(cases) >= 3:
        n_test, n_val = max(n_test, 1 if test_fraction > 0 else 0), max(n_val, 1 if val_fraction > 0 else 0)
    test = [cases[i] for i in order[:n_test]]
    val = [cases[i] for i in order[n_test : n_test + n_val]]
    train = [cases[i] for i in order[n_test + n_val :]]
    return {"training": train, "validation": val, "test": test}


def _relative(path: str, root: str) -> str:
    return os.path.relpath(path, root)


def _relative_case(case: dict, root: str) -> dict:
    out = dict(case)
    out["image"] = [_relative(p, root) for p in case["image"]] if isinstance(case["image"], list) else _relative(case["image"], root)
    if "label" in case:
        out["label"] = _relative(case["label"], root)
    return out


def build_slice_datalist(dataset_dir: str, output_dir: str, image_size: int = 256, val_fraction: float = 0.1,
                         test_fraction: float = 0.1, seed: int = 0, min_brain_pixels: int = 1,
                         slice_range: Sequence[int] | None = None, percentile: float = 99.5) -> str:
    """Write ``output_dir/datalist.json`` and ``output_dir/slices/``; return the datalist path."""
    cases = find_cases(dataset_dir)
    os.makedirs(output_dir, exist_ok=True)
    sections = split_cases(cases, val_fraction, test_fraction, seed)
    scale = ScaleBrainIntensity(percentile)
    datalist: dict = {"description": f"axial slices of {os.path.abspath(dataset_dir)}", "image_size": image_size,
                      "channels": ["t1", "t1ce", "t2", "flair"], "seed": seed}
    for section, members in sections.items():
        entries = []
        for case in tqdm(members, desc=f"slices ({section})", unit="case"):
            volume, seg = load_case(case)
            require(volume.ndim == 4, case["image"], f"expected a 3D volume per modality, got shape {tuple(volume.shape[1:])}")
            folder = os.path.join(output_dir, "slices", case["case"])
            os.makedirs(folder, exist_ok=True)
            for k, image, label, size in iter_slices(scale(volume), seg, image_size, min_brain_pixels, slice_range):
                entry = {"image": save_nifti(image, os.path.join(folder, f"{case['case']}_z{k:03d}.nii.gz")),
                         "case": case["case"], "slice": k, "relative_tumour_size": size, "has_tumour": int(size > 0)}
                if label is not None:
                    entry["label"] = save_nifti(label, os.path.join(folder, f"{case['case']}_z{k:03d}_seg.nii.gz"))
                for key in ("image", "label"):
                    if key in entry:
                        entry[key] = _relative(entry[key], output_dir)
                entries.append(entry)
        datalist[section] = entries
        datalist[f"{section}_cases"] = [_relative_case(c, output_dir) for c in members]
    path = os.path.join(output_dir, "datalist.json")
    save_json(datalist, path)
    return path


def read_json(path: str, what: str = "JSON file"):
    """The content of a JSON file; one-line error when it is missing or not JSON (e.g. text or truncated)."""
    check_file(path, what)
    try:
        with open(path) as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(path, f"{what} is not valid JSON ({str(err).splitlines()[0][:200]})") from None


def load_section(datalist: str, section: str = "training") -> list[dict]:
    """Entries of one section of a datalist (``training``, ``validation``, ``test`` or ``<section>_cases``),
    paths made absolute (MONAI's Decathlon datalist loader).

    MONAI's loader also turns any other value that happens to name a file or folder beside the datalist into an
    absolute path; identifiers (strings without ``/`` or ``.``, such as a case id equal to a case folder's name) are
    kept. ``image`` and ``label`` are always paths (a DICOM folder may be named without ``/`` or ``.``).
    """
    raw = read_json(datalist, "datalist")
    require(isinstance(raw, dict) and section in raw, datalist, f"has no section '{section}'")
    require(len(raw[section]) > 0, datalist, f"section '{section}' is empty")  # MONAI's loader fails on an empty 'test'
    items = load_decathlon_datalist(datalist, is_segmentation=True, data_list_key=section)
    for item, original in zip(items, raw[section]):
        for key, value in original.items():
            if key not in ("image", "label") and isinstance(value, str) and not any(c in value for c in "/."):
                item[key] = value
    return items
