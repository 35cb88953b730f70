"""Guidance: callables ``g(x_t, t, **kwargs)`` giving the term of ``eps_hat = eps - sqrt(1 - abar_t) * g``.

``t`` is the MONAI timestep tensor the guidance network was trained with (noisy images from ``add_noise``).
Guidance networks are frozen: gradients are taken with respect to x_t only.
"""

from __future__ import annotations

import torch
from torch import nn


def freeze(network: nn.Module) -> nn.Module:
    """Evaluation mode and no parameter gradients."""
    network.eval()
    for p in network.parameters():
        p.requires_grad_(False)
    return network


def _per_sample(value, batch: int, like: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A scalar, sequence or tensor as a ``dtype`` tensor of shape (batch,) on ``like``'s device; None -> all NaN."""
    if value is None:
        return torch.full((batch,), float("nan"), device=like.device, dtype=dtype)
    v = torch.as_tensor(value, dtype=dtype, device=like.device).reshape(-1)
    return v.expand(batch) if v.numel() == 1 else v


class RegressionGuidance:
    """Swiss Army Knife Algorithm 1: ``g = s_t * c * grad_x R(x_t, t)``.

    ``s_t = i - R(x_t, t)`` for a desired value i, or a fixed ``s_t`` (+1 grows, -1 shrinks). Both can be
    given per sample (``desired_value`` NaN where the fixed scale applies), so one batch can hold several targets.

    Args:
        regressor: R(x, timesteps=t) -> (B, 1) or (B,).
        gradient_scale: the constant c (1000 for BraTS in the paper, 5 for faces).
        desired_value: default i (None when ``fixed_scale`` is used).
        fixed_scale: default fixed s_t.
        amp: bf16 autocast of the regressor on CUDA.
    """

    def __init__(self, regressor: nn.Module, gradient_scale: float = 1000.0, desired_value=None, fixed_scale=None,
                 amp: bool = False):
        self.regressor = freeze(regressor)
        self.gradient_scale = float(gradient_scale)
        self.desired_value, self.fixed_scale, self.amp = desired_value, fixed_scale, amp
        self.last_prediction: torch.Tensor | None = None

    def predict(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """R(x_t, t) as a (B,) tensor (differentiable in x)."""
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp and x.is_cuda):
            return self.regressor(x, timesteps=t).float().reshape(x.shape[0])

    def __call__(self, x: torch.Tensor, t: torch.Tensor, desired_value=None, fixed_scale=None) -> torch.Tensor:
        desired = _per_sample(self.desired_value if desired_value is None else desired_value, x.shape[0], x)
        fixed = _per_sample(self.fixed_scale if fixed_scale is None else fixed_scale, x.shape[0], x)
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            r = self.predict(x_in, t)
            (grad,) = torch.autograd.grad(r.sum(), x_in)
        r = r.detach()
        self.last_prediction = r
        s = torch.where(torch.isnan(desired), fixed, desired - r)
        if torch.isnan(s).any():
            raise ValueError("RegressionGuidance needs a desired_value or a fixed_scale for every sample")
        return self.gradient_scale * s.view(-1, *([1] * (x.ndim - 1))) * grad
