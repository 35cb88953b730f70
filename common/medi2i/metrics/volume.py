"""PSNR, NMSE and SSIM on whole 3D volumes, as ALDM reports them (Sec. 4.3): computed between the ground-truth and
the synthesised volume, intensities in [0, 1]."""

from __future__ import annotations

import math

import torch
from monai.metrics import PSNRMetric, SSIMMetric


def _volume_batch(x: torch.Tensor) -> torch.Tensor:
    """A ``(*spatial)`` or ``(C, *spatial)`` volume as a float ``(1, C, *spatial)`` batch."""
    x = x.float()
    while x.ndim < 5:
        x = x.unsqueeze(0)
    return x


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """MONAI's ``PSNRMetric``, capped at ``10 log10(data_range^2 / 1e-12)`` so that an exact copy (the identity
    baseline's same-modality pair) scores a finite value."""
    value = PSNRMetric(data_range)(_volume_batch(prediction), _volume_batch(target))
    return float(value.clamp_max(10 * math.log10(data_range**2 / 1e-12)))


def nmse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """``||prediction - target||^2 / ||target||^2``."""
    return float(((prediction.float() - target.float()) ** 2).sum() / (target.float() ** 2).sum().clamp_min(1e-12))


def ssim(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, kernel_size: int = 7,
         kernel_sigma: float = 1.5) -> float:
    """MONAI's 3D ``SSIMMetric`` (Gaussian window) of a ``(*spatial)`` or ``(C, *spatial)`` volume."""
    metric = SSIMMetric(spatial_dims=3, data_range=data_range, win_size=kernel_size, kernel_sigma=kernel_sigma)
    return float(metric(_volume_batch(prediction), _volume_batch(target)))


def volume_metrics(prediction: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """``{"psnr", "nmse", "ssim"}`` of one synthesised volume against its ground truth."""
    return {"psnr": psnr(prediction, target), "nmse": nmse(prediction, target), "ssim": ssim(prediction, target)}
