"""Guidance: callables ``g(x_t, t, **kwargs)`` giving the term of ``eps_hat = eps - sqrt(1 - abar_t) * g``.

``t`` is the MONAI timestep tensor the guidance network was trained with (noisy images from ``add_noise``).
Guidance networks are frozen: gradients are taken with respect to x_t only.
"""

from __future__ import annotations

import torch
from torch import nn

from ..networks.checkpoints import load_weights
from .acceleration import accelerated, autocast


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


class _NetworkGuidance:
    """Shared part of the guidances: a frozen network, an optional checkpoint loaded on first use (so a caller
    holding only the diffusion model, e.g. MONAI Label, gets a working guidance), bf16 on CUDA (``amp``),
    ``channels_last`` and ``compile`` as in :func:`~medi2i.diffusion.acceleration.accelerated`."""

    what = "guidance network checkpoint"

    def __init__(self, network: nn.Module, checkpoint: str | None = None, amp: bool = False,
                 channels_last: bool = False, compile: bool | dict = False):
        self.network, self.checkpoint, self.amp = freeze(network), checkpoint, amp
        self.channels_last, self.compile = bool(channels_last), compile
        self._loaded = checkpoint is None
        self.last_value: torch.Tensor | None = None

    def prepare(self, x: torch.Tensor, **kwargs) -> dict:
        """Called by the sampler once before its loop: load the weights; returns the keyword arguments of the
        per-step calls (subclasses check and convert them here, so that no step reads back from the device)."""
        self.load()
        return kwargs

    def load(self) -> None:
        """Load ``checkpoint`` once (one-line error when missing or mismatched)."""
        if not self._loaded:
            device = next(self.network.parameters()).device
            load_weights(self.network, self.checkpoint, self.what, map_location=device)
            freeze(self.network)
            self._loaded = True

    def logits(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's output ``network(x, timesteps=t)`` in float32."""
        self.load()
        network = accelerated(self.network, x, self.amp, self.channels_last, self.compile)
        with autocast(self.amp, x):
            return network(x, timesteps=t).float()

    def _gradient(self, x: torch.Tensor, t: torch.Tensor, objective) -> torch.Tensor:
        """grad_x of ``objective(logits)`` (per-sample values, summed: samples do not interact); the values are
        kept in ``last_value``."""
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            value = objective(self.logits(x_in, t))
            (grad,) = torch.autograd.grad(value.sum(), x_in)
        self.last_value = value.detach()
        return grad


class RegressionGuidance(_NetworkGuidance):
    """Swiss Army Knife Algorithm 1: ``g = s_t * c * grad_x R(x_t, t)``.

    ``s_t = i - R(x_t, t)`` for a desired value i, or a fixed ``s_t`` (+1 grows, -1 shrinks). Both can be
    given per sample (``desired_value`` NaN where the fixed scale applies), so one batch can hold several targets.

    Args:
        regressor: R(x, timesteps=t) -> (B, 1) or (B,).
        gradient_scale: the constant c (1000 for BraTS in the paper, 5 for faces).
        desired_value: default i (None when ``fixed_scale`` is used).
        fixed_scale: default fixed s_t.
        checkpoint: regressor weights loaded on first use.
        amp, channels_last, compile: speed settings of the regressor (see :class:`_NetworkGuidance`).
    """

    what = "regressor checkpoint"

    def __init__(self, regressor: nn.Module, gradient_scale: float = 1000.0, desired_value=None, fixed_scale=None,
                 checkpoint: str | None = None, amp: bool = False, channels_last: bool = False, compile: bool | dict = False):
        super().__init__(regressor, checkpoint, amp, channels_last, compile)
        self.gradient_scale = float(gradient_scale)
        self.desired_value, self.fixed_scale = desired_value, fixed_scale

    def prepare(self, x: torch.Tensor, desired_value=None, fixed_scale=None) -> dict:
        """``{"targets": (desired, fixed)}``: per-sample tensors (defaults filled in), checked once (every sample
        needs one of them) for the per-step calls."""
        self.load()
        desired = _per_sample(self.desired_value if desired_value is None else desired_value, x.shape[0], x)
        fixed = _per_sample(self.fixed_scale if fixed_scale is None else fixed_scale, x.shape[0], x)
        if bool(torch.isnan(torch.where(torch.isnan(desired), fixed, desired)).any()):
            raise ValueError("RegressionGuidance needs a desired_value or a fixed_scale for every sample")
        return {"targets": (desired, fixed)}

    def __call__(self, x: torch.Tensor, t: torch.Tensor, desired_value=None, fixed_scale=None, targets=None) -> torch.Tensor:
        desired, fixed = targets if targets is not None else self.prepare(x, desired_value, fixed_scale)["targets"]
        grad = self._gradient(x, t, lambda r: r.reshape(x.shape[0]))  # R(x_t, t), kept in last_value
        s = torch.where(torch.isnan(desired), fixed, desired - self.last_value)
        return self.gradient_scale * s.view(-1, *([1] * (x.ndim - 1))) * grad
