"""Evaluation of tumour inpainting (what ``evaluate.json`` runs), on the folder ``inference.json`` wrote.

Per case: the share of the absolute change ``sum_c |output - input|`` that lies inside the desired mask z
dilated by ``margin`` pixels (the paper's claim: only the masked region changes), the Dice between the
segmenter's ``S(x_0, 0) > threshold`` and z on the output (and on the input, as the baseline), the share of that
segmented tumour on the output lying inside the dilated z (where the inserted tumour is; NaN when none is found),
the mean signed FLAIR change inside z and over the brain outside the dilated z (a check that does not use the
guiding segmenter: an inserted tumour is FLAIR-bright), and PSNR/SSIM over the brain outside the dilated mask.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from monai.metrics import compute_confusion_matrix_metric, compute_dice, get_confusion_matrix

from ..data.brats import brain_mask
from ..data.slices import to_network_grid
from ..data.io import check_output_dir
from ..settings import check_runner
from ..errors import exit_on_input_error, require
from ..metrics import SegmentedTumourSize, dilate, masked_psnr, masked_ssim
from ..networks.checkpoints import load_weights
from .outputs import load_slice, read_summary
from .tables import write_tables


def mean_row(rows: list[dict], keys, **first) -> dict:
    """``first`` plus the NaN-ignoring mean of ``keys`` over ``rows``."""
    out = dict(first, n=len(rows))
    for key in keys:
        values = [r[key] for r in rows if not np.isnan(r[key])]
        out[key] = float(np.mean(values)) if values else float("nan")
    return out


class InpaintingEvaluation:
    """Args: inference_dir, output_dir, the segmenter S and its checkpoint, the dilation ``margin`` (pixels),
    the threshold on S, the translated image's name (``target``) and the network input size (S runs on the network
    grid, as during inference; the change and PSNR/SSIM are measured on the written slices); overwrite (write into a non-empty
    output_dir) and the config's settings to check first (:func:`~medi2i.settings.check_settings`)."""

    KEYS = ("share_inside_mask", "dice_output", "dice_input", "tumour_inside_mask", "flair_change_inside_mask",
            "flair_change_outside_mask", "psnr_outside_mask", "ssim_outside_mask")

    def __init__(self, inference_dir: str, output_dir: str, segmenter: torch.nn.Module, segmenter_checkpoint: str,
                 margin: int = 3, threshold: float = 0.5, target: str = "inpainted", image_size: int = 256, device="cpu",
                 overwrite: bool = False, settings: dict | None = None):
        self.inference_dir, self.output_dir = inference_dir, output_dir
        self.segmenter, self.segmenter_checkpoint = segmenter, segmenter_checkpoint
        self.margin, self.threshold, self.target, self.device = int(margin), float(threshold), target, torch.device(device)
        self.image_size, self.overwrite, self.settings = int(image_size), overwrite, settings

    @torch.no_grad()
    def _segment(self, image: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
        """Dice of ``S(x, 0) > threshold`` and z, both ``(1, C, H, W)`` brought to the network grid, and the share
        of the segmented pixels inside z dilated by ``margin`` network pixels."""
        image, z = to_network_grid(image[0], self.image_size)[None], to_network_grid(z[0], self.image_size, mask=True)[None]
        seg = SegmentedTumourSize(self.segmenter, self.threshold).segment(image).float().cpu()
        inside = get_confusion_matrix(seg, dilate(z > 0, self.margin).float(), include_background=True)
        return (float(compute_dice(seg, z, include_background=True, ignore_empty=False)[0, 0]),
                float(compute_confusion_matrix_metric("precision", inside)[0, 0]))  # NaN when nothing is segmented

    def _case_metrics(self, row: dict) -> dict:
        folder = os.path.join(self.inference_dir, row["case"])
        x_in = load_slice(os.path.join(folder, "input.nii.gz"))[None]
        x_out = load_slice(os.path.join(folder, f"{row['target']}.nii.gz"))[None]
        z = load_slice(os.path.join(folder, "mask.nii.gz"))[None] > 0
        require(x_in.shape == x_out.shape, folder, f"output shape {tuple(x_out.shape)} differs from input {tuple(x_in.shape)}")
        change = (x_out - x_in).abs().sum(1, keepdim=True)
        region = dilate(z, self.margin)
        outside = brain_mask(x_in[0])[None] & ~region
        flair_change = (x_out - x_in)[:, -1:]
        dice_output, tumour_inside = self._segment(x_out, z.float())
        return {"case": row["case"], "target": row["target"],
                "share_inside_mask": float(change[region].sum() / change.sum().clamp_min(1e-12)),
                "dice_output": dice_output, "dice_input": self._segment(x_in, z.float())[0], "tumour_inside_mask": tumour_inside,
                "flair_change_inside_mask": float(flair_change[z].mean()), "flair_change_outside_mask": float(flair_change[outside].mean()),
                "psnr_outside_mask": float(masked_psnr(x_out, x_in, outside)),
                "ssim_outside_mask": float(masked_ssim(x_out, x_in, outside))}

    @exit_on_input_error
    def run(self) -> list[dict]:
        check_runner(self)
        rows = [r for r in read_summary(self.inference_dir) if r["target"] == self.target]
        require(len(rows) > 0, self.inference_dir, f"no '{self.target}' translation in summary.csv")
        check_output_dir(self.output_dir, self.overwrite)
        load_weights(self.segmenter, self.segmenter_checkpoint, "segmenter checkpoint", map_location=self.device)
        self.segmenter.eval()
        per_case = [self._case_metrics(r) for r in rows]
        table = [mean_row(per_case, self.KEYS, target=self.target)]
        paths = write_tables(table, self.output_dir, "metrics", "Tumour inpainting: change inside the mask, Dice, "
                             "preservation outside", {"per_case": per_case, "inference_dir": os.path.abspath(self.inference_dir)})
        write_tables(per_case, self.output_dir, "per_case")
        print(open(paths["markdown"]).read())
        return table
