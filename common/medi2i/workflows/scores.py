"""Scores reported for translated images (the :data:`~medi2i.workflows.translate.Score` signature)."""

from __future__ import annotations

import torch

from ..metrics.tumour import TumourSize


class RegressorScore:
    """R(x, 0): the guidance regressor's prediction on a clean image."""

    def __init__(self, regressor: torch.nn.Module):
        self.regressor = regressor

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, brain: torch.Tensor) -> torch.Tensor:
        self.regressor.eval()
        t = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
        return self.regressor(images.float(), timesteps=t).reshape(-1)


class MeasuredTumourSize:
    """Tumour pixels / brain pixels from FLAIR hyperintensity (:class:`~medi2i.metrics.TumourSize`)."""

    def __init__(self, ratio: float = 1.4):
        self.measure = TumourSize(ratio)

    def __call__(self, images: torch.Tensor, brain: torch.Tensor) -> torch.Tensor:
        return self.measure(images, brain)[0]
