"""Evaluation of contrast-conditional generation (what ``evaluate.json`` runs).

For each guidance weight w (paper / Conditional Diffusion MNIST: 0, 0.5, 2) N samples of every contrast are
generated and judged by a contrast classifier trained on real slices (``train_classifier.json``): per-contrast
accuracy = fraction classified as the requested contrast. Each contrast's samples are also compared with the real
slices of that contrast (datalist ``section``): earth mover's distance of the tissue-intensity histograms and mean
tissue intensity; FID only when ``fid_weights`` names a local TorchScript feature network. The classifier's
accuracy on the real slices is the reference row. Output: ``metrics.json``, ``metrics.md``, ``grid_w<w>.png``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from monai.utils import set_determinism

from ..data.contrasts import load_contrast_section
from ..data.io import check_output_dir
from ..diffusion.generation_inferer import ContrastGenerationInferer, check_guidance_weight
from ..errors import check_file, exit_on_input_error, require
from ..metrics import frechet_distance, histogram_distance
from ..viz import sample_grid
from ..networks.checkpoints import load_torchscript, load_weights
from ..settings import check_runner
from .contrast_generation import check_num_samples, generate
from .outputs import load_slice
from .tables import write_tables


def load_real_slices(datalist: str, section: str, contrasts: Sequence[str], max_per_contrast: int = 0) -> dict[str, torch.Tensor]:
    """Real slices of the datalist section per contrast as ``(n, 1, S, S)`` (at most ``max_per_contrast`` each,
    evenly spread; 0 = all)."""
    items = load_contrast_section(datalist, section, contrasts)
    real = {}
    for name in contrasts:
        paths = [item["image"] for item in items if item["contrast"] == name]
        if max_per_contrast and len(paths) > max_per_contrast:
            paths = [paths[round(i * (len(paths) - 1) / (max_per_contrast - 1))] for i in range(max_per_contrast)] if max_per_contrast > 1 else paths[:1]
        if paths:
            real[name] = torch.stack([load_slice(p, "real slice").as_tensor() for p in paths])
    return real


@torch.no_grad()
def classify(classifier: torch.nn.Module, images: torch.Tensor, device, batch_size: int = 32) -> torch.Tensor:
    """Predicted class index of each image."""
    out = [classifier(images[s : s + batch_size].to(device)).argmax(1).cpu() for s in range(0, images.shape[0], batch_size)]
    return torch.cat(out)


class ContrastEvaluation:
    """Args: output_dir; network + checkpoint and inferer as in :class:`~medi2i.workflows.ContrastGeneration`;
    classifier + classifier_checkpoint; datalist and section of the real slices; guidance_weights; num_samples
    (N per contrast and w); image_size, in_channels; histogram threshold/bins; fid_weights (local TorchScript file
    or None) and fid_in_channels; max_real (real slices per contrast, 0 = all); overwrite (write into a non-empty
    output_dir); settings: the config's settings to check first (:func:`~medi2i.settings.check_settings`)."""

    def __init__(self, output_dir: str, network: torch.nn.Module, inferer: ContrastGenerationInferer, checkpoint: str,
                 classifier: torch.nn.Module, classifier_checkpoint: str, datalist: str, section: str = "test",
                 guidance_weights: Sequence[float] = (0.0, 0.5, 2.0), num_samples: int = 16, image_size: int = 160,
                 in_channels: int = 1, batch_size: int = 8, device="cpu", seed: int = 0, tissue_threshold: float = 0.05,
                 histogram_bins: int = 64, fid_weights: str | None = None, fid_in_channels: int = 3, max_real: int = 0,
                 overwrite: bool = False, settings: dict | None = None):
        self.output_dir, self.network, self.inferer, self.checkpoint = output_dir, network, inferer, checkpoint
        self.classifier, self.classifier_checkpoint = classifier, classifier_checkpoint
        self.datalist, self.section, self.guidance_weights = datalist, section, list(guidance_weights)
        self.num_samples, self.shape = num_samples, (int(in_channels), int(image_size), int(image_size))
        self.batch_size, self.device, self.seed = max(1, int(batch_size)), torch.device(device), seed
        self.threshold, self.bins = float(tissue_threshold), int(histogram_bins)
        self.fid_weights, self.fid_in_channels, self.max_real = fid_weights, int(fid_in_channels), int(max_real)
        self.overwrite, self.settings = overwrite, settings

    def _fid_network(self):
        if not self.fid_weights:
            return None
        return load_torchscript(self.fid_weights, "FID feature network (TorchScript)", self.device)

    @exit_on_input_error
    def run(self) -> list[dict]:
        check_num_samples(self.num_samples)
        require(len(self.guidance_weights) > 0, "guidance_weights", "no guidance weight given")
        weights = [check_guidance_weight(w) for w in self.guidance_weights]
        check_runner(self, self.inferer)
        self.inferer.sampler.check()
        check_output_dir(self.output_dir, self.overwrite)
        names = self.inferer.contrasts.names
        real = load_real_slices(self.datalist, self.section, names, self.max_real)
        load_weights(self.network, self.checkpoint, "diffusion model checkpoint", map_location=self.device)
        load_weights(self.classifier, self.classifier_checkpoint, "contrast classifier checkpoint", map_location=self.device)
        fid_network = self._fid_network()
        self.network.eval()
        self.classifier.eval()
        set_determinism(self.seed)
        rows = []
        for name, images in real.items():  # reference: the classifier on real slices
            correct = classify(self.classifier, images, self.device) == self.inferer.contrasts.index(name)
            rows.append({"guidance_weight": "real", "contrast": name, "n": images.shape[0], "accuracy": float(correct.float().mean()),
                         "histogram_emd": 0.0, "mean_tissue_intensity": self._tissue_mean(images), "fid": float("nan")})
        for w in weights:
            samples, _, _ = generate(self.network, self.inferer, names, self.num_samples, w, self.shape, self.batch_size,
                                     self.device, self.seed)
            sample_grid(os.path.join(self.output_dir, f"grid_w{w:g}.png"), {n: s[:8] for n, s in samples.items()}, f"w = {w:g}")
            for name, images in samples.items():
                correct = classify(self.classifier, images, self.device) == self.inferer.contrasts.index(name)
                rows.append({"guidance_weight": w, "contrast": name, "n": images.shape[0], "accuracy": float(correct.float().mean()),
                             "histogram_emd": histogram_distance(images, real[name], self.threshold, self.bins) if name in real else float("nan"),
                             "mean_tissue_intensity": self._tissue_mean(images),
                             "fid": frechet_distance(fid_network, images.to(self.device), real[name].to(self.device), self.fid_in_channels)
                             if fid_network is not None and name in real else float("nan")})
        summary = [{"guidance_weight": w, "mean_accuracy": _mean([r["accuracy"] for r in rows if r["guidance_weight"] == w]),
                    "mean_histogram_emd": _mean([r["histogram_emd"] for r in rows if r["guidance_weight"] == w])} for w in weights]
        paths = write_tables(rows, self.output_dir, "metrics", "Contrast generation: classifier accuracy and intensity histograms",
                             {"summary": summary, "datalist": os.path.abspath(self.datalist), "section": self.section,
                              "fid": "computed" if fid_network is not None else "off (no fid_weights given)"})
        write_tables(summary, self.output_dir, "summary")
        print(open(paths["markdown"]).read())
        return rows

    def _tissue_mean(self, images: torch.Tensor) -> float:
        tissue = images[images > self.threshold]
        return float(tissue.mean()) if tissue.numel() else float("nan")


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")
