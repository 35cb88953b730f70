"""Evaluation of tumour-growth translations (what ``evaluate.json`` runs), on the folder ``inference.json`` wrote.

Per requested target: the regressor's R(x_0) on the output, the tumour size measured on the output (FLAIR
hyperintensity, relative to the output's own median brain FLAIR, and again with the input's median as a fixed
threshold, which a globally brighter or darker output cannot fool; optionally also by a segmenter trained on labels,
:class:`~medi2i.metrics.SegmentedTumourSize`), their errors against the desired value i, and PSNR/SSIM over the brain
outside the tumour region (label, input and output tumour masks, dilated), which the paper claims is preserved.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from ..data.brats import brain_mask
from ..data.slices import relative_tumour_size, to_network_grid
from ..data.io import check_output_dir
from ..settings import check_runner
from ..errors import exit_on_input_error, require
from ..metrics import SegmentedTumourSize, TumourSize, dilate, masked_psnr, masked_ssim
from ..viz import requested_vs_achieved
from ..networks.checkpoints import load_weights
from ..serving import bundle_network
from .outputs import load_slice, read_summary
from .scores import RegressorScore
from .tables import write_tables


class GrowthEvaluation:
    """Args: inference_dir (with ``summary.csv``), output_dir, regressor and its checkpoint, the tumour measure's
    FLAIR ratio, the dilation margin (pixels) of the excluded tumour region, and the network input size: the
    regressor sees the slices on the network grid, as during inference (:class:`~medi2i.data.slices.SliceGrid`);
    sizes and PSNR/SSIM are measured on the written slices (the input's grid); overwrite (write into a non-empty
    output_dir) and the config's settings to check first (:func:`~medi2i.settings.check_settings`). Optionally
    ``segmenter_bundle``, a tumour-inpainting bundle folder whose ``segmenter_def`` (with ``segmenter_overlays``)
    and ``segmenter_checkpoint`` (inside that folder) give a segmenter S(x, t): its tumour size on the network grid
    is a third measure (``segmented_size_*``), independent of the FLAIR threshold and of the guiding regressor."""

    def __init__(self, inference_dir: str, output_dir: str, regressor: torch.nn.Module, regressor_checkpoint: str,
                 tumour_flair_ratio: float = 1.4, margin: int = 3, image_size: int = 256, device="cpu",
                 overwrite: bool = False, settings: dict | None = None, segmenter_bundle: str | None = None,
                 segmenter_checkpoint: str = "models/real/segmenter.pt", segmenter_overlays=("demo.json",)):
        self.inference_dir, self.output_dir = inference_dir, output_dir
        self.regressor, self.regressor_checkpoint = regressor, regressor_checkpoint
        self.segmenter = (segmenter_bundle, segmenter_checkpoint, tuple(segmenter_overlays))
        self.segmented: SegmentedTumourSize | None = None
        self.measure, self.margin, self.device = TumourSize(tumour_flair_ratio), int(margin), torch.device(device)
        self.image_size, self.overwrite, self.settings = int(image_size), overwrite, settings

    def _network_grid_scores(self, x_in: torch.Tensor, x_out: torch.Tensor) -> dict:
        """R(x, 0) of the input and output slices ``(1, C, H, W)`` on the network grid, and the segmenter's sizes
        there (with the input's brain) when there is a segmenter."""
        fitted = torch.stack([to_network_grid(x[0], self.image_size) for x in (x_in, x_out)]).to(self.device)
        r_in, r_out = RegressorScore(self.regressor)(fitted, None).tolist()  # R ignores the brain mask
        scores = {"regressor_input": r_in, "regressor_output": r_out}
        if self.segmented is not None:
            brain = torch.stack([brain_mask(fitted[0].cpu())] * 2)
            scores["segmented_size_input"], scores["segmented_size_output"] = self.segmented(fitted, brain)[0].tolist()
        return scores

    def _case_metrics(self, row: dict) -> dict:
        folder = os.path.join(self.inference_dir, row["case"])
        x_in = load_slice(os.path.join(folder, "input.nii.gz"))[None]
        x_out = load_slice(os.path.join(folder, f"{row['target']}.nii.gz"))[None]
        require(x_in.shape == x_out.shape, folder, f"output shape {tuple(x_out.shape)} differs from input {tuple(x_in.shape)}")
        brain = brain_mask(x_in[0])[None]
        size_in, mask_in = self.measure(x_in, brain)
        size_out, mask_out = self.measure(x_out, brain)
        size_fixed, _ = self.measure(x_out, brain, reference=x_in)
        region = mask_in | mask_out
        label_path, true_size = os.path.join(folder, "label.nii.gz"), float("nan")
        if os.path.isfile(label_path):
            label = load_slice(label_path)[None] > 0
            region, true_size = region | label, relative_tumour_size(label[0], x_in[0])
        outside = brain & ~dilate(region, self.margin)
        scores = self._network_grid_scores(x_in, x_out)
        desired, r_out = float(row["desired_value"]), scores["regressor_output"]
        return {"case": row["case"], "target": row["target"], "desired_value": desired, "true_size_input": true_size,
                **scores, "measured_size_input": float(size_in), "measured_size_output": float(size_out),
                "measured_size_output_fixed_threshold": float(size_fixed),
                "regressor_error": abs(r_out - desired) if not math.isnan(desired) else float("nan"),
                "measured_error": abs(float(size_out) - desired) if not math.isnan(desired) else float("nan"),
                "psnr_outside_tumour": float(masked_psnr(x_out, x_in, outside)),
                "ssim_outside_tumour": float(masked_ssim(x_out, x_in, outside))}

    @exit_on_input_error
    def run(self) -> list[dict]:
        check_runner(self)
        bundle, checkpoint, overlays = self.segmenter
        if bundle is not None:
            segmenter = bundle_network(bundle, "segmenter_def", checkpoint, overlays, self.device)
            self.segmented = SegmentedTumourSize(segmenter)
        rows = read_summary(self.inference_dir, ("case", "target", "desired_value"))
        check_output_dir(self.output_dir, self.overwrite)
        load_weights(self.regressor, self.regressor_checkpoint, "regressor checkpoint", map_location=self.device)
        per_case = [self._case_metrics(row) for row in rows]
        segmented = ("segmented_size_output",) if self.segmented is not None else ()
        table = []
        for target in dict.fromkeys(r["target"] for r in per_case):
            group = [r for r in per_case if r["target"] == target]
            entry = {"target": target, "desired_value": group[0]["desired_value"], "n": len(group)}
            for key in ("regressor_output", "measured_size_output", "measured_size_output_fixed_threshold",
                        *segmented, "regressor_error", "measured_error",
                        "psnr_outside_tumour", "ssim_outside_tumour"):
                entry[key] = float(np.mean([r[key] for r in group]))
            table.append(entry)
        inputs = list({r["case"]: r for r in per_case}.values())
        mean_input = lambda key: float(np.mean([r[key] for r in inputs]))  # noqa: E731
        size_in = mean_input("measured_size_input")  # its own median: both threshold measures
        table.insert(0, {"target": "input", "desired_value": float("nan"), "n": len(inputs),
                         "regressor_output": mean_input("regressor_input"),
                         "measured_size_output": size_in, "measured_size_output_fixed_threshold": size_in,
                         **{key: mean_input("segmented_size_input") for key in segmented}})
        effects = growth_effects(per_case)
        paths = write_tables(table, self.output_dir, "metrics", "Tumour growth: requested vs achieved",
                             {"effects": effects, "per_case": per_case, "inference_dir": os.path.abspath(self.inference_dir)})
        write_tables([effects], self.output_dir, "effects", "Tumour growth: direction of the effect per slice")
        write_tables(per_case, self.output_dir, "per_case")
        guided = [r for r in per_case if not math.isnan(r["desired_value"])]
        if guided:
            requested = [r["desired_value"] for r in guided]
            requested_vs_achieved(os.path.join(self.output_dir, "requested_vs_achieved.png"), requested,
                                  {"regressor R(x0)": (requested, [r["regressor_output"] for r in guided]),
                                   "measured size": (requested, [r["measured_size_output"] for r in guided])},
                                  "requested relative tumour size i", "achieved")
        print(open(paths["markdown"]).read())
        print(open(os.path.join(self.output_dir, "effects.md")).read())
        return table


def growth_effects(per_case: list[dict]) -> dict:
    """Per slice, whether the measured size follows the request: non-decreasing in the desired value i and larger
    for the largest i than for the smallest (``monotonic``), above the input's for grow and below it for shrink
    (fixed s_t > 0 / < 0 targets named ``grow*``/``shrink*``); the share of slices where each holds, with the
    scale-free measure and, when measured, with the input's threshold (suffix ``_fixed_threshold``) and with the
    segmenter (``_segmenter``, against the segmenter's size of the input); and the regressor's mean absolute error
    R(x_0) against the labelled relative tumour size of the inputs."""
    share = lambda flags: float(np.mean(flags)) if flags else float("nan")  # noqa: E731
    effects = {"slices": len(dict.fromkeys(r["case"] for r in per_case))}
    for suffix, key, baseline in MEASURES:
        if all(key in r for r in per_case):
            flags = _directions(per_case, key, baseline)
            effects.update({f"{name}{suffix}": share(flag) for name, flag in flags.items()})
    labelled = {r["case"]: r for r in per_case if not math.isnan(r["true_size_input"])}
    mae = share([abs(r["regressor_input"] - r["true_size_input"]) for r in labelled.values()])
    return {**effects, "labelled_slices": len(labelled), "regressor_mae": mae,
            "psnr_outside_tumour_min": float(min(r["psnr_outside_tumour"] for r in per_case))}


#: (suffix of the effect shares, per-case size of the output, of the input) for each tumour measure
MEASURES = (("", "measured_size_output", "measured_size_input"),
            ("_fixed_threshold", "measured_size_output_fixed_threshold", "measured_size_input"),
            ("_segmenter", "segmented_size_output", "segmented_size_input"))


def _directions(per_case: list[dict], key: str, baseline: str) -> dict[str, list[bool]]:
    """Per slice: is the size ``key`` monotonic in i, above the input's (``baseline``) for grow, below it for shrink."""
    flags = {"monotonic_share": [], "grow_share": [], "shrink_share": []}
    for case in dict.fromkeys(r["case"] for r in per_case):
        rows = [r for r in per_case if r["case"] == case]
        guided = sorted((r for r in rows if not math.isnan(r["desired_value"])), key=lambda r: r["desired_value"])
        sizes = [r[key] for r in guided]
        if len(sizes) > 1:
            flags["monotonic_share"].append(all(b >= a for a, b in zip(sizes, sizes[1:])) and sizes[-1] > sizes[0])
        size_in = rows[0][baseline]
        flags["grow_share"] += [r[key] > size_in for r in rows if r["target"].startswith("grow")]
        flags["shrink_share"] += [r[key] < size_in for r in rows if r["target"].startswith("shrink")]
    return flags
