"""Metrics of restored images against their ground truth (Med-cDiff Tables 1-3 and the usual fidelity metrics).

Images are ``(B, 1, H, W)`` in [-1, 1]; every metric maps them to [0, 1] first (data range 1).

* PSNR, SSIM: MONAI ``PSNRMetric`` / ``SSIMMetric``.
* NMSE: ``||x_hat - x||^2 / ||x||^2``.
* Inpainting: PSNR and NMSE restricted to the hole (:data:`IN_MASK`), since the known pixels are copied and would
  otherwise dominate the whole-image figures.
* Accutance (sharpness, Higgins & Jones 1952): mean Sobel gradient magnitude (MONAI ``SobelGradients``), x100.
  Compare with the ground truth's own accutance: blurrier is lower, noisier is higher.
* LPIPS and FID need pretrained feature networks, which are never downloaded: :class:`FeatureMetrics` uses
  TorchScript files the user supplies (LPIPS: ``lpips(a, b) -> (B,)`` on 3-channel [-1, 1] images; FID: a
  feature extractor ``f(x) -> (B, F)`` on 3-channel [0, 1] images, scored with MONAI ``FIDMetric``); without
  them these columns are skipped with a message.
"""

from __future__ import annotations

import torch
from monai.metrics import FIDMetric, PSNRMetric, SSIMMetric
from monai.transforms import SobelGradients

from ..networks.checkpoints import load_torchscript
from .image import masked_psnr


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return ((x.float() + 1) / 2).clamp(0, 1)


def psnr(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return PSNRMetric(max_val=1.0, reduction="none")(to_unit(x), to_unit(target)).reshape(-1)


def ssim(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return SSIMMetric(spatial_dims=2, data_range=1.0, reduction="none")(to_unit(x), to_unit(target)).reshape(-1)


def nmse(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x, target = to_unit(x), to_unit(target)
    return ((x - target) ** 2).flatten(1).sum(1) / (target**2).flatten(1).sum(1).clamp_min(1e-12)


def accutance(x: torch.Tensor) -> torch.Tensor:
    """Mean Sobel gradient magnitude of each image (in [0, 1] intensities), x100."""
    sobel = SobelGradients(kernel_size=3, spatial_axes=(0, 1))
    return torch.stack([100 * sobel(img).norm(dim=0).mean() for img in to_unit(x)])


FIDELITY = {"psnr": psnr, "ssim": ssim, "nmse": nmse}


def psnr_in_mask(x: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return masked_psnr(to_unit(x), to_unit(target), mask > 0.5)


def nmse_in_mask(x: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = (mask > 0.5).float()
    x, target = to_unit(x), to_unit(target)
    return ((x - target) ** 2 * m).flatten(1).sum(1) / (target**2 * m).flatten(1).sum(1).clamp_min(1e-12)


IN_MASK = {"psnr_hole": psnr_in_mask, "nmse_hole": nmse_in_mask}


class FeatureMetrics:
    """LPIPS and FID from user-supplied TorchScript weights (paths or None); ``messages`` says what is skipped."""

    def __init__(self, lpips_weights: str | None = None, fid_weights: str | None = None, device="cpu"):
        self.device = torch.device(device)
        self.lpips = load_torchscript(lpips_weights, "LPIPS TorchScript", self.device) if lpips_weights else None
        self.fid = load_torchscript(fid_weights, "FID feature TorchScript", self.device) if fid_weights else None
        self.messages = [f"{name} skipped: no local weights given (set {key}; nothing is downloaded)"
                         for name, key, net in (("LPIPS", "lpips_weights", self.lpips), ("FID", "fid_weights", self.fid)) if net is None]

    @torch.no_grad()
    def lpips_per_image(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
        if self.lpips is None:
            return None
        rgb = lambda im: im.float().clamp(-1, 1).expand(-1, 3, -1, -1).to(self.device)  # noqa: E731
        return self.lpips(rgb(x), rgb(target)).reshape(-1).cpu()

    @torch.no_grad()
    def fid_score(self, x: torch.Tensor, target: torch.Tensor) -> float | None:
        """FID between the sets ``x`` and ``target`` (needs at least 2 images each)."""
        if self.fid is None or x.shape[0] < 2:
            return None
        feats = [self.fid(to_unit(im).expand(-1, 3, -1, -1).to(self.device)).flatten(1).double().cpu() for im in (x, target)]
        return float(FIDMetric()(feats[0], feats[1]))
