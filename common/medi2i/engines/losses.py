"""The hybrid objective of Improved DDPM (Nichol & Dhariwal 2021), which the Swiss Army Knife DDPM is trained with.

``L_hybrid = L_simple + lambda * L_vlb`` with ``lambda = 0.001``. The network outputs ``2C`` channels: the noise
prediction and ``v`` in [-1, 1] that interpolates the log-variance between ``log beta_t`` and the posterior
``log beta~_t``. The variational term uses a stop-gradient on the mean, so it trains only the variance; for
``t = 0`` it is the discretised Gaussian decoder NLL. ``L_vlb`` over one sampled ``t`` is ``T * L_t``.
With ``C`` output channels only ``L_simple`` (the MSE of the noise) is used.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x, mean, log_scale, data_range=(0.0, 1.0), bins: int = 256):
    """log p(x) of data quantised to ``bins`` levels on ``data_range`` under N(mean, exp(log_scale)^2), elementwise."""
    lo, hi = data_range
    half = (hi - lo) / (bins - 1) / 2
    normal = torch.distributions.Normal(0.0, 1.0)
    inv_std = torch.exp(-log_scale)
    cdf_plus = normal.cdf(inv_std * (x - mean + half))
    cdf_min = normal.cdf(inv_std * (x - mean - half))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < lo + half, log_cdf_plus, torch.where(x > hi - half, log_one_minus_cdf_min, log_delta))


class HybridDiffusionLoss(nn.Module):
    """Improved-DDPM hybrid loss; ``forward(prediction, target)`` with target ``{"noise", "images", "timesteps"}``
    (see :class:`~medi2i.engines.prepare_batch.HybridPrepareBatch`) or the noise tensor alone (MSE only)."""

    def __init__(self, scheduler, vlb_weight: float = 0.001, data_range=(0.0, 1.0)):
        super().__init__()
        betas = scheduler.betas.double()
        abar = scheduler.alphas_cumprod.double()
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        posterior_var = betas * (1 - abar_prev) / (1 - abar)
        buffers = {
            "abar": abar, "log_beta": torch.log(betas),
            "posterior_log_var": torch.log(torch.cat([posterior_var[1:2], posterior_var[1:]])),
            "coef_x0": betas * abar_prev.sqrt() / (1 - abar),
            "coef_xt": (1 - abar_prev) * (1 - betas).sqrt() / (1 - abar),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.float())
        self.num_timesteps = len(betas)
        self.vlb_weight, self.data_range = vlb_weight, data_range

    def forward(self, prediction: torch.Tensor, target) -> torch.Tensor:
        if not isinstance(target, dict):
            return torch.mean((prediction[:, : target.shape[1]] - target) ** 2)
        noise, x0, t = target["noise"], target["images"], target["timesteps"]
        channels = noise.shape[1]
        eps = prediction[:, :channels]
        mse = torch.mean((eps - noise) ** 2)
        if prediction.shape[1] == channels:
            return mse
        return mse + self.vlb_weight * self.num_timesteps * self.vlb_term(prediction, noise, x0, t).mean()

    def _at(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return getattr(self, name).to(like.device)[t].view(-1, *([1] * (like.ndim - 1))).to(like.dtype)

    def vlb_term(self, prediction, noise, x0, t) -> torch.Tensor:
        """L_t in bits per dimension for each sample (stop-gradient on the predicted mean)."""
        channels = noise.shape[1]
        eps, v = prediction[:, :channels].detach(), prediction[:, channels:]
        abar = self._at("abar", t, x0)
        xt = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        x0_hat = (xt - (1 - abar).sqrt() * eps) / abar.sqrt()
        coef_x0, coef_xt = self._at("coef_x0", t, x0), self._at("coef_xt", t, x0)
        min_log, max_log = self._at("posterior_log_var", t, x0), self._at("log_beta", t, x0)
        frac = (v + 1) / 2
        model_log_var = frac * max_log + (1 - frac) * min_log
        model_mean = coef_x0 * x0_hat + coef_xt * xt
        true_mean = coef_x0 * x0 + coef_xt * xt
        kl = normal_kl(true_mean, min_log, model_mean, model_log_var).flatten(1).mean(1) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var, self.data_range).flatten(1).mean(1) / math.log(2.0)
        return torch.where(t == 0, nll, kl)
