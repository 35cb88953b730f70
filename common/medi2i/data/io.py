"""Writing outputs: NIfTI through MONAI's writer (affine kept), PNG, JSON, CSV; atomically, never half-written."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager

import torch
from monai.data import MetaTensor, NibabelWriter

from ..errors import InputError, require


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


STAGING_PREFIX = ".staging-"


def _is_stale_staging(name: str) -> bool:
    """Whether ``name`` is a staging folder (``.staging-<pid>-<random>``, or the older ``.staging-<random>``) whose
    process no longer runs."""
    if not name.startswith(STAGING_PREFIX):
        return False
    pid, _, rest = name[len(STAGING_PREFIX):].partition("-")
    if not (pid.isdigit() and rest):
        return re.fullmatch(r"[a-z0-9_]{8}", pid) is not None and not rest
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, OverflowError):
        return True
    except PermissionError:  # someone else's live process
        return False
    return False


def remove_stale_staging(folder: str) -> list[str]:
    """Remove the staging folders that killed runs left in ``folder`` (their process is gone); return their paths."""
    stale = [os.path.join(folder, name) for name in (os.listdir(folder) if os.path.isdir(folder) else [])
             if _is_stale_staging(name)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
        print(f"removed {path} (left by an interrupted run)", file=sys.stderr)
    return stale


def check_output_dir(folder: str, overwrite: bool = False, replaced=None) -> None:
    """Before any work: ``folder`` must be a folder that can be created and written; stale staging folders in it and
    beside it are removed; a non-empty ``folder`` is refused unless ``overwrite``, and then the entries of it named in
    ``replaced`` (None: all) that the run will replace are listed on stderr."""
    folder = os.path.abspath(folder)
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    require(os.path.isdir(existing), folder, "output path is a file, not a folder" if existing == folder
            else f"cannot create the output folder: {existing} is a file")
    require(os.access(existing, os.W_OK | os.X_OK), folder, f"output folder cannot be written (no permission on {existing})")
    for place in (folder, os.path.dirname(folder)):  # staging folders sit in the output folder or beside it
        remove_stale_staging(place)
    entries = sorted(e for e in os.listdir(folder) if not e.startswith(STAGING_PREFIX)) if existing == folder else []
    if not entries:
        return
    require(overwrite, folder, f"output folder exists and is not empty ({len(entries)} entries, e.g. {entries[0]}); "
            "set overwrite=true to write into it")
    gone = entries if replaced is None else [e for e in entries if e in set(replaced)]
    if gone:
        rows = _csv_rows(os.path.join(folder, "summary.csv")) if "summary.csv" in gone else 0
        listed = ", ".join(gone[:5]) + (f" and {len(gone) - 5} more" if len(gone) > 5 else "")
        print(f"overwrite=true: replacing {listed} in {folder}" + (f" (summary.csv had {rows} rows)" if rows else ""),
              file=sys.stderr)


def _csv_rows(path: str) -> int:
    with open(path, newline="") as f:
        return max(0, sum(1 for _ in csv.reader(f)) - 1)


@contextmanager
def staged_output(folder: str, overwrite: bool = False):
    """Yield a temporary folder beside ``folder``; on success it replaces ``folder`` in one move.

    An existing ``folder`` is an error unless ``overwrite``; the temporary folder never outlives the run (a killed
    run's is removed by the next :func:`check_output_dir`).
    """
    if os.path.exists(folder) and os.listdir(folder) and not overwrite:
        raise InputError(folder, "output folder exists and is not empty (set overwrite=true to replace it)")
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=parent)
    try:
        yield tmp
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
