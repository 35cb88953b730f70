"""DDIM noise-encoding and guided DDIM decoding (Swiss Army Knife, Eq. 3 with sigma_t = 0 and Eq. 4).

Timesteps follow the paper: ``t = 0`` is the clean image with ``abar_0 = 1`` and ``x_t`` for ``t = 1..T`` has
``abar_t = scheduler.alphas_cumprod[t - 1]``, which is what MONAI's ``add_noise(x0, noise, t - 1)`` produced
during training; the network is therefore evaluated at MONAI timestep ``t - 1`` (``0`` for the clean image).

The noise schedule comes from a MONAI scheduler. The steps are written out here rather than taken from
``DDIMScheduler.step``/``reversed_step`` because those assume a fixed gap of ``T // n`` while
``set_timesteps`` spaces timesteps with ``linspace(...).round()``, so a strided encode and decode would not
mirror each other. With every step (``stride = 1``) the two agree, which the tests check.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from tqdm import tqdm

from ..errors import require

#: a guidance gives the gradient term g(x_t, t) of eps_hat = eps - sqrt(1 - abar_t) * g
Guidance = Callable[..., torch.Tensor]


class DDIMSampler:
    """Deterministic DDIM between the clean image and noise level ``noise_level`` (L), visiting every
    ``stride``-th timestep (stride 1 is the paper's Algorithms 1-2).

    Args:
        scheduler: a MONAI scheduler (``DDPMScheduler``/``DDIMScheduler``) holding ``alphas_cumprod``.
        noise_level: L in {1..T}.
        stride: gap between visited timesteps; ``L`` is always visited.
        eta: DDIM stochasticity of the decoding (0 = deterministic, as in the paper).
        clip_sample: optional ``(min, max)`` clamp of the predicted x_0 in each decoding step (off in the paper's
            equations; guided-diffusion clamps to [-1, 1]).
        amp: bf16 autocast for network calls on CUDA (ignored on CPU).
        progress: show a tqdm progress bar.
    """

    def __init__(self, scheduler, noise_level: int = 400, stride: int = 1, eta: float = 0.0,
                 clip_sample: tuple[float, float] | None = None, amp: bool = False, progress: bool = False):
        self.scheduler = scheduler
        self.noise_level, self.stride, self.eta = int(noise_level), int(stride), float(eta)
        self.clip_sample, self.amp, self.progress = clip_sample, amp, progress
        self.abar = torch.cat([torch.ones(1, dtype=torch.float64), scheduler.alphas_cumprod.double()])
        self.network_evaluations = 0
        self.guidance_evaluations = 0

    def check(self) -> None:
        """Raise a one-line :class:`~medi2i.InputError` for settings outside their range."""
        num_train = int(self.scheduler.num_train_timesteps)
        require(1 <= self.noise_level <= num_train, "noise_level",
                f"L = {self.noise_level} must be in 1..T = {num_train} (the scheduler's number of timesteps)")
        require(self.stride >= 1, "stride", f"must be >= 1, got {self.stride}")
        require(self.eta >= 0, "eta", f"must be >= 0, got {self.eta}")

    @property
    def timesteps(self) -> list[int]:
        """Visited paper timesteps ``0 = t_0 < t_1 < ... < t_n = L``."""
        self.check()
        return sorted(set(range(0, self.noise_level, self.stride)) | {self.noise_level})

    def _coef(self, t: int, like: torch.Tensor) -> torch.Tensor:
        return self.abar[t].to(device=like.device, dtype=like.dtype)

    def model_timesteps(self, t: int, x: torch.Tensor) -> torch.Tensor:
        """MONAI timestep tensor (batch) of paper timestep ``t``."""
        return torch.full((x.shape[0],), max(t - 1, 0), device=x.device, dtype=torch.long)

    def epsilon(self, network: nn.Module, x: torch.Tensor, t: int, **network_kwargs) -> torch.Tensor:
        """eps_theta(x_t, t); with a learned variance the network's extra output channels are dropped."""
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp and x.is_cuda):
            out = network(x, timesteps=self.model_timesteps(t, x), **network_kwargs)
        self.network_evaluations += x.shape[0]
        return out[:, : x.shape[1]].float()

    def encode(self, network: nn.Module, x0: torch.Tensor, **network_kwargs) -> torch.Tensor:
        """x_0 -> x_L by deterministic DDIM (Eq. 4, generalised to strides)."""
        x = x0.float()
        steps = self.timesteps
        for t, t_next in self._bar(list(zip(steps[:-1], steps[1:])), "encode"):
            eps = self.epsilon(network, x, t, **network_kwargs)
            a, a_next = self._coef(t, x), self._coef(t_next, x)
            x = x + a_next.sqrt() * ((1 / a.sqrt() - 1 / a_next.sqrt()) * x + ((1 / a_next - 1).sqrt() - (1 / a - 1).sqrt()) * eps)
        return x

    def decode(self, network: nn.Module, x_noisy: torch.Tensor, guidance: Guidance | None = None,
               generator: torch.Generator | None = None, network_kwargs: dict | None = None,
               **guidance_kwargs) -> torch.Tensor:
        """x_L -> x_0 by DDIM (Eq. 3 with sigma_t = eta * DDIM's sigma) and eps_hat = eps - sqrt(1 - abar_t) g(x_t, t).

        ``guidance=None`` is plain DDIM. ``guidance_kwargs`` (e.g. per-sample ``desired_value``) go to the guidance.
        """
        x = x_noisy.float()
        steps = self.timesteps
        network_kwargs = network_kwargs or {}
        for t, t_prev in self._bar(list(zip(steps[::-1][:-1], steps[::-1][1:])), "decode"):
            a, a_prev = self._coef(t, x), self._coef(t_prev, x)
            eps = self.epsilon(network, x, t, **network_kwargs)
            if self.clip_sample is not None:
                x0_hat = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(*self.clip_sample)
                eps = (x - a.sqrt() * x0_hat) / (1 - a).sqrt()
            if guidance is not None:
                eps = eps - (1 - a).sqrt() * guidance(x, self.model_timesteps(t, x), **guidance_kwargs).float()
                self.guidance_evaluations += x.shape[0]
            x0_hat = (x - (1 - a).sqrt() * eps) / a.sqrt()
            sigma = self.eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).clamp_min(0).sqrt()
            x = a_prev.sqrt() * x0_hat + (1 - a_prev - sigma**2).clamp_min(0).sqrt() * eps
            if self.eta > 0 and t_prev > 0:
                x = x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x

    def translate(self, network: nn.Module, x0: torch.Tensor, guidance: Guidance | None = None,
                  generator: torch.Generator | None = None, **guidance_kwargs) -> torch.Tensor:
        """Encode to L, then decode with guidance (Algorithms 1 and 2)."""
        return self.decode(network, self.encode(network, x0), guidance, generator, **guidance_kwargs)

    def _bar(self, pairs, desc):
        return tqdm(pairs, desc=desc, leave=False, unit="step") if self.progress else pairs
