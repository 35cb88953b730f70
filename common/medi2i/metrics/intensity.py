"""Distribution distances between generated and real slices: intensity histograms in tissue, and the Frechet
distance of features from a user-supplied (local) feature network."""

from __future__ import annotations

import torch
from monai.metrics import FIDMetric


def tissue_histogram(images: torch.Tensor, threshold: float = 0.05, bins: int = 64) -> torch.Tensor:
    """Normalised histogram on [0, 1] of the pixels above ``threshold`` (tissue) of a batch of images."""
    values = images.detach().float().flatten().cpu()
    values = values[values > threshold].clamp(0.0, 1.0)
    hist = torch.histc(values, bins=bins, min=0.0, max=1.0)
    return hist / hist.sum().clamp_min(1.0)


def histogram_distance(generated: torch.Tensor, real: torch.Tensor, threshold: float = 0.05, bins: int = 64) -> float:
    """Earth mover's (Wasserstein-1) distance between the tissue-intensity histograms, in intensity units [0, 1]:
    the sum over bins of |CDF_generated - CDF_real| times the bin width."""
    a, b = tissue_histogram(generated, threshold, bins), tissue_histogram(real, threshold, bins)
    return float((a.cumsum(0) - b.cumsum(0)).abs().sum() / bins)


def frechet_distance(feature_network: torch.nn.Module, generated: torch.Tensor, real: torch.Tensor,
                     in_channels: int = 3, batch_size: int = 32) -> float:
    """FID between two image sets with features from ``feature_network`` (images repeated to ``in_channels``)."""

    @torch.no_grad()
    def features(images: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size]
            x = x.repeat(1, in_channels // x.shape[1], *([1] * (x.ndim - 2))) if x.shape[1] != in_channels else x
            out.append(feature_network(x).flatten(1).float().cpu())
        return torch.cat(out)

    return float(FIDMetric()(features(generated), features(real)))
