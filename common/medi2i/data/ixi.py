"""Find IXI subjects on disk: ``IXI<nnn>-<site>-<nnnn>-<contrast>.nii[.gz]`` (T1, T2, PD, MRA, DTI), in one folder
or one folder per contrast (``IXI-T1/``, ``IXI-T2/``...), with any prefix (e.g. ``ds_`` for resampled copies).

IXI contrasts of one subject are separate acquisitions: they share scanner space (their affines), not a voxel grid.
"""

from __future__ import annotations

import glob
import os
import re

from ..errors import require

IXI_CONTRASTS = ("T1", "T2", "PD", "MRA", "DTI")
_PATTERN = re.compile(r"(?P<subject>IXI\d{3}-[A-Za-z]+-\d{4})-(?P<contrast>T1|T2|PD|MRA|DTI)\.nii(\.gz)?$")


def find_ixi_subjects(path: str, contrasts=("T1", "T2", "PD")) -> list[dict]:
    """``[{"subject": id, "<contrast>": path, ...}]`` for every subject under ``path`` (searched recursively)
    that has at least one of ``contrasts``; missing contrasts are absent from the subject's dict."""
    require(os.path.exists(path), path, "no such file or folder")
    subjects: dict[str, dict] = {}
    for file in sorted(glob.glob(os.path.join(path, "**", "*.nii*"), recursive=True)):
        match = _PATTERN.search(os.path.basename(file))
        if match and match["contrast"] in contrasts:
            subjects.setdefault(match["subject"], {"subject": match["subject"]})[match["contrast"]] = file
    require(len(subjects) > 0, path, f"no IXI image found (expected IXI<nnn>-<site>-<nnnn>-{{{','.join(contrasts)}}}.nii.gz)")
    return [subjects[k] for k in sorted(subjects)]
