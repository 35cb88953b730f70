"""Choosing inputs from a slice datalist: healthy slices for tumour inpainting."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from ..errors import require
from .datalist import load_section


def healthy_slices(datalist: str, section: str = "test", max_slices: int | None = None, per_case: int = 1) -> list[str]:
    """Image files of tumour-free slices of ``section``: per case the ``per_case`` with the most brain (non-zero
    FLAIR), cases in datalist order, at most ``max_slices``."""
    require(isinstance(per_case, int) and per_case >= 1, "healthy_per_case", f"must be an integer >= 1, got {per_case!r}")
    candidates: dict[str, list[tuple[int, str]]] = {}
    for entry in load_section(datalist, section):
        if int(entry.get("has_tumour", 0)):
            continue
        brain = int(np.count_nonzero(np.asarray(nib.load(entry["image"]).dataobj)[..., -1]))
        candidates.setdefault(entry["case"], []).append((brain, entry["image"]))
    files = [path for slices in candidates.values() for _, path in sorted(slices, key=lambda s: -s[0])[:per_case]]
    files = files[:max_slices]
    require(len(files) > 0, datalist, f"section '{section}' has no tumour-free slice to inpaint")
    return files
