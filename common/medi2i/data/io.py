"""Writing outputs: NIfTI through MONAI's writer (affine kept), PNG, JSON, CSV; atomically, never half-written."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from contextlib import contextmanager

import torch
from monai.data import MetaTensor, NibabelWriter

from ..errors import InputError


def save_nifti(image: torch.Tensor, path: str) -> str:
    """Write a channel-first MetaTensor ``(C, *spatial)`` to ``path`` with its affine (channels last on disk, kept
    even when single, so that MONAI's ``LoadImage(ensure_channel_first=True)`` reads back the same shape)."""
    writer = NibabelWriter(output_dtype=torch.float32)
    writer.set_data_array(image.detach().cpu(), channel_dim=0, squeeze_end_dims=False)
    affine = image.affine if isinstance(image, MetaTensor) else torch.eye(4, dtype=torch.float64)
    writer.set_metadata({"affine": affine, "original_affine": affine}, resample=False)
    tmp = path + ".part.nii.gz"
    writer.write(tmp, verbose=False)
    os.replace(tmp, path)
    return path


def save_json(obj, path: str) -> str:
    """Write ``obj`` atomically, formatted as pre-commit's ``pretty-format-json --indent=4`` and ``end-of-file-fixer``
    want it (bundle configs rewritten by ``tools/sync_configs.py`` stay formatted)."""
    tmp = path + ".part"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=4)
        f.write("\n")
    os.replace(tmp, path)
    return path


def save_csv(rows: list[dict], path: str) -> str:
    tmp = path + ".part"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


@contextmanager
def staged_output(folder: str, overwrite: bool = False):
    """Yield a temporary folder beside ``folder``; on success it replaces ``folder`` in one move.

    An existing ``folder`` is an error unless ``overwrite``; on failure nothing is left behind.
    """
    if os.path.exists(folder) and os.listdir(folder) and not overwrite:
        raise InputError(folder, "output folder exists and is not empty (set overwrite=true to replace it)")
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".staging-", dir=parent)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.replace(tmp, folder)
