"""Exact models around one image, to test segmentation and classifier guidance on phantoms without training.

Pixels are independent ``x_0 ~ N(image, std^2)``: the optimal noise predictor and the posterior mean
``E[x_0 | x_t]`` are linear in x_t. Guidance networks threshold the posterior mean of one channel (FLAIR by
default, where tumours are bright): a per-pixel "tumour" segmenter and a slice-level tumour classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from .analytic import GaussianEpsilon


class GaussianImagePrior(GaussianEpsilon):
    """MMSE noise predictor for pixels ``N(image, std^2)``; ``image`` is ``(C, H, W)``."""

    def __init__(self, scheduler, image: torch.Tensor, std: float = 0.1):
        super().__init__(scheduler, 0.0, std)
        self.register_buffer("image", image.float().clone())

    @property
    def mean(self) -> torch.Tensor:
        return self.image

    @mean.setter
    def mean(self, value) -> None:  # the parent sets a scalar mean; the image buffer is the mean here
        pass

    def posterior_mean(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """E[x_0 | x_t] for each pixel."""
        a = self._abar(timesteps, x)
        return self.image + a.sqrt() * self.std**2 / (a * self.std**2 + 1 - a) * (x - a.sqrt() * self.image)


class ThresholdSegmenter(nn.Module):
    """Logits ``sharpness * (E[x_0 | x_t]_channel - threshold)``: S(x_t, t) of a bright-lesion segmenter."""

    def __init__(self, prior: GaussianImagePrior, channel: int = 3, threshold: float = 0.75, sharpness: float = 40.0):
        super().__init__()
        self.prior, self.channel, self.threshold, self.sharpness = prior, channel, threshold, sharpness

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, **_) -> torch.Tensor:
        x0 = self.prior.posterior_mean(x, timesteps)[:, self.channel : self.channel + 1]
        return self.sharpness * (x0 - self.threshold)


class ThresholdClassifier(nn.Module):
    """Logits ``(0, k * (lesion_share - share0))`` where ``lesion_share`` is the mean of the segmenter's S over
    the image: class 1 ("tumour") is likelier the more bright-lesion pixels there are."""

    def __init__(self, segmenter: ThresholdSegmenter, k: float = 200.0, share0: float = 0.01):
        super().__init__()
        self.segmenter, self.k, self.share0 = segmenter, k, share0

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, **_) -> torch.Tensor:
        share = torch.sigmoid(self.segmenter(x, timesteps)).flatten(1).mean(1)
        return torch.stack([torch.zeros_like(share), self.k * (share - self.share0)], 1)
