"""Reading what an inference run wrote: the rows of ``summary.csv`` and the case folders' 2D slices."""

from __future__ import annotations

import csv
import os

import torch
from ..data.brats import _load
from ..errors import InputError, check_file, check_finite, require


def read_summary(inference_dir: str, columns=("case", "target")) -> list[dict]:
    """Rows of ``<inference_dir>/summary.csv`` (one-line error when inference has not run, or the file is not a
    summary with ``columns``)."""
    summary = check_file(os.path.join(inference_dir, "summary.csv"), "inference summary (run the inference config first)")
    try:
        with open(summary, newline="") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(summary, f"is not a CSV summary ({err})") from None
    require(len(rows) > 0, summary, "has no rows")
    missing = [c for c in columns if c not in rows[0] or any(r.get(c) is None for r in rows)]
    require(not missing, summary, f"is not an inference summary (no column or value '{', '.join(missing)}' in some row)")
    return rows


def load_slice(path: str, what: str = "translation output") -> torch.Tensor:
    """A written ``(C, H, W, 1)`` NIfTI slice as a float ``(C, H, W)`` tensor (one-line error when it is missing,
    unreadable, not one slice or not finite)."""
    image = _load(check_file(path, what), path)
    require(image.ndim == 4 and image.shape[-1] == 1, path, f"expected one 2D slice, got shape {tuple(image.shape[1:])}")
    check_finite(image, path)
    return image[..., 0].float()
