"""Exact models for Gaussian data, to test samplers and guidance without training.

If every pixel of x_0 is N(mu, sigma^2) (independent), then x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps is
N(sqrt(abar) mu, abar sigma^2 + 1 - abar) and the optimal noise predictor and posterior mean are linear in x_t.
"""

from __future__ import annotations

import torch
from torch import nn


class _Gaussian(nn.Module):
    def __init__(self, scheduler, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.double().clone())
        self.mean, self.std = float(mean), float(std)

    def _abar(self, timesteps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.alphas_cumprod[timesteps.long()].to(x.dtype).view(-1, *([1] * (x.ndim - 1)))


class GaussianEpsilon(_Gaussian):
    """The MMSE noise predictor E[eps | x_t] for N(mean, std^2) pixels; call as ``model(x, timesteps=t)``."""

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, **_) -> torch.Tensor:
        a = self._abar(timesteps, x)
        return (1 - a).sqrt() * (x - a.sqrt() * self.mean) / (a * self.std**2 + 1 - a)


class GaussianPosteriorMeanRegressor(_Gaussian):
    """R(x_t, t) = spatial mean of E[x_0 | x_t]: a linear, time-aware regressor of the image mean."""

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, **_) -> torch.Tensor:
        a = self._abar(timesteps, x)
        x0 = self.mean + a.sqrt() * self.std**2 / (a * self.std**2 + 1 - a) * (x - a.sqrt() * self.mean)
        return x0.flatten(1).mean(1, keepdim=True)


class GaussianConditionalEpsilon(_Gaussian):
    """The MMSE noise predictor E[eps | x_t, y] when x_0 | y ~ N(y, std^2) pixelwise: input ``cat([x_t, y])``
    (the concat conditioning of Med-cDiff), ``model(x, timesteps=t)``; E[x_0 | y] = y is the known answer."""

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, **_) -> torch.Tensor:
        xt, y = x.chunk(2, dim=1)
        a = self._abar(timesteps, xt)
        return (1 - a).sqrt() * (xt - a.sqrt() * y) / (a * self.std**2 + 1 - a)


class ClassGaussianEpsilon(_Gaussian):
    """MMSE noise predictor when x_0 given class ``c`` has N(means[c], std^2) pixels; ``means[null_class]`` is the
    unconditional model's mean. Called like a class-conditional UNet: ``model(x, timesteps=t, class_labels=c)``."""

    def __init__(self, scheduler, means, std: float = 1.0):
        super().__init__(scheduler, 0.0, std)
        self.register_buffer("means", torch.as_tensor(means, dtype=torch.float64))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, class_labels: torch.Tensor, **_) -> torch.Tensor:
        a = self._abar(timesteps, x)
        mean = self.means[class_labels.long()].to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
        return (1 - a).sqrt() * (x - a.sqrt() * mean) / (a * self.std**2 + 1 - a)
