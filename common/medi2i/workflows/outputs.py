"""Reading what an inference run wrote: the rows of ``summary.csv`` and the case folders' 2D slices."""

from __future__ import annotations

import csv
import os

import torch
from monai.transforms import LoadImage

from ..errors import check_file, require


def read_summary(inference_dir: str) -> list[dict]:
    """Rows of ``<inference_dir>/summary.csv`` (one-line error when inference has not run)."""
    summary = check_file(os.path.join(inference_dir, "summary.csv"), "inference summary (run the inference config first)")
    with open(summary) as f:
        rows = list(csv.DictReader(f))
    require(len(rows) > 0, summary, "has no rows")
    return rows


def load_slice(path: str, what: str = "translation output") -> torch.Tensor:
    """A written ``(C, H, W, 1)`` NIfTI slice as a float ``(C, H, W)`` tensor (one-line error when missing)."""
    return LoadImage(image_only=True, ensure_channel_first=True)(check_file(path, what))[..., 0].float()
