"""PSNR, NMSE and SSIM on whole 3D volumes, as ALDM reports them (Sec. 4.3): computed between the ground-truth and
the synthesised volume, intensities in [0, 1]."""

from __future__ import annotations

import torch
from monai.metrics.regression import compute_ssim_and_cs


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    mse = torch.mean((prediction.float() - target.float()) ** 2)
    return float(10 * torch.log10(data_range**2 / mse.clamp_min(1e-12)))


def nmse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """``||prediction - target||^2 / ||target||^2``."""
    return float(((prediction.float() - target.float()) ** 2).sum() / (target.float() ** 2).sum().clamp_min(1e-12))


def ssim(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, kernel_size: int = 7,
         kernel_sigma: float = 1.5) -> float:
    """Mean of MONAI's Gaussian-window SSIM map over a ``(*spatial)`` or ``(C, *spatial)`` volume."""
    p, t = prediction.float(), target.float()
    while p.ndim < 5:
        p, t = p.unsqueeze(0), t.unsqueeze(0)
    dims = p.ndim - 2
    ssim_map, _ = compute_ssim_and_cs(p, t, dims, [kernel_size] * dims, [kernel_sigma] * dims, data_range=data_range)
    return float(ssim_map.mean())


def volume_metrics(prediction: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """``{"psnr", "nmse", "ssim"}`` of one synthesised volume against its ground truth."""
    return {"psnr": psnr(prediction, target), "nmse": nmse(prediction, target), "ssim": ssim(prediction, target)}
