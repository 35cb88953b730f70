"""Evaluation of anomaly maps (classifier-guided healthy translations, Wolleb et al. 2022) against the tumour
label: per case with a tumour, AUROC of the map over the brain pixels and the Dice of the map thresholded at
the best threshold (the usual optimistic upper bound, as in [26]); what ``evaluate_classifier.json`` runs.
The anomaly map is ``<target>_difference.nii.gz`` = sum over channels of |input - healthy translation|.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from monai.metrics import compute_roc_auc

from ..data.brats import brain_mask
from ..data.io import check_output_dir
from ..settings import check_runner
from ..errors import exit_on_input_error, require
from .inpainting_evaluation import mean_row
from .outputs import load_slice, read_summary
from .tables import write_tables


def best_dice(scores: torch.Tensor, truth: torch.Tensor, num_thresholds: int = 100) -> tuple[float, float]:
    """``(max Dice, its threshold)`` of ``scores > threshold`` against boolean ``truth`` over quantile thresholds."""
    thresholds = torch.quantile(scores.float(), torch.linspace(0, 1, num_thresholds + 2)[1:-1]).unique()
    best = (0.0, float("nan"))
    for thr in thresholds:
        pred = scores > thr
        dice = 2 * float((pred & truth).sum()) / max(1.0, float(pred.sum() + truth.sum()))
        best = max(best, (dice, float(thr)))
    return best


class AnomalyEvaluation:
    """Args: inference_dir (with ``summary.csv``, per-case ``label.nii.gz``), output_dir, the ``target`` name,
    overwrite (write into a non-empty output_dir), the config's settings to check first."""

    KEYS = ("auroc", "best_dice", "best_threshold", "anomaly_inside_tumour", "anomaly_outside_tumour")

    def __init__(self, inference_dir: str, output_dir: str, target: str = "healthy", overwrite: bool = False,
                 settings: dict | None = None):
        self.inference_dir, self.output_dir, self.target = inference_dir, output_dir, target
        self.overwrite, self.settings = overwrite, settings

    def _case_metrics(self, row: dict) -> dict | None:
        folder = os.path.join(self.inference_dir, row["case"])
        label_path = os.path.join(folder, "label.nii.gz")
        if not os.path.isfile(label_path):
            return None
        brain = brain_mask(load_slice(os.path.join(folder, "input.nii.gz")))[0]
        truth = (load_slice(label_path)[0] > 0)[brain]
        scores = load_slice(os.path.join(folder, f"{self.target}_difference.nii.gz"))[0][brain]
        if not truth.any() or truth.all():
            return None
        dice, thr = best_dice(scores, truth)
        return {"case": row["case"], "auroc": float(compute_roc_auc(scores, truth.float())), "best_dice": dice,
                "best_threshold": thr, "anomaly_inside_tumour": float(scores[truth].mean()),
                "anomaly_outside_tumour": float(scores[~truth].mean())}

    @exit_on_input_error
    def run(self) -> list[dict]:
        check_runner(self)
        rows = [r for r in read_summary(self.inference_dir) if r["target"] == self.target]
        require(len(rows) > 0, self.inference_dir, f"no '{self.target}' translation in summary.csv")
        check_output_dir(self.output_dir, self.overwrite)
        per_case = [m for m in (self._case_metrics(r) for r in rows) if m is not None]
        require(len(per_case) > 0, self.inference_dir, "no translated case has a tumour label to evaluate against")
        table = [mean_row(per_case, self.KEYS, target=self.target)]
        paths = write_tables(table, self.output_dir, "metrics", "Anomaly maps against the tumour label",
                             {"per_case": per_case, "inference_dir": os.path.abspath(self.inference_dir)})
        write_tables(per_case, self.output_dir, "per_case")
        print(open(paths["markdown"]).read())
        return table
