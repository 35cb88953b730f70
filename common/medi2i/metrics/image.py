"""Image metrics restricted to a region: PSNR and SSIM on the pixels of a mask (MONAI's SSIM map)."""

from __future__ import annotations

import torch
from monai.metrics.regression import compute_ssim_and_cs


def masked_psnr(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR per sample over the pixels where ``mask`` (B, 1, *spatial) is true, all channels pooled."""
    mask = mask.expand_as(target).float()
    mse = ((prediction - target) ** 2 * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-12))


def masked_ssim(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, data_range: float = 1.0,
                kernel_size: int = 7, kernel_sigma: float = 1.5) -> torch.Tensor:
    """Mean of MONAI's SSIM map per sample over the pixels where ``mask`` is true (map and mask cropped alike)."""
    dims = prediction.ndim - 2
    ssim_map, _ = compute_ssim_and_cs(prediction.float(), target.float(), dims, [kernel_size] * dims,
                                      [kernel_sigma] * dims, data_range=data_range)
    crop = kernel_size // 2
    region = tuple(slice(crop, crop + s) for s in ssim_map.shape[2:])
    m = mask[(slice(None), slice(None), *region)].expand_as(ssim_map).float()
    return (ssim_map * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)
