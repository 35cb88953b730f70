"""Choosing inputs from a slice datalist: healthy slices for tumour inpainting."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from ..errors import require
from .datalist import load_section


def healthy_slices(datalist: str, section: str = "test", max_slices: int | None = None) -> list[str]:
    """Image files of tumour-free slices of ``section``: per case the one with the most brain (non-zero FLAIR),
    cases in datalist order, at most ``max_slices``."""
    best: dict[str, tuple[int, str]] = {}
    for entry in load_section(datalist, section):
        if int(entry.get("has_tumour", 0)):
            continue
        brain = int(np.count_nonzero(np.asarray(nib.load(entry["image"]).dataobj)[..., -1]))
        if brain > best.get(entry["case"], (-1, ""))[0]:
            best[entry["case"]] = (brain, entry["image"])
    files = [path for _, path in best.values()][:max_slices]
    require(len(files) > 0, datalist, f"section '{section}' has no tumour-free slice to inpaint")
    return files
