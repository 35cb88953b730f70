"""DDIM noise-encoding and guided DDIM decoding (Swiss Army Knife, Eq. 3 with sigma_t = 0 and Eq. 4).

Timesteps follow the paper: ``t = 0`` is the clean image with ``abar_0 = 1`` and ``x_t`` for ``t = 1..T`` has
``abar_t = scheduler.alphas_cumprod[t - 1]``, which is what MONAI's ``add_noise(x0, noise, t - 1)`` produced
during training; the network is therefore evaluated at MONAI timestep ``t - 1`` (``0`` for the clean image).

The noise schedule comes from a MONAI scheduler. The steps are written out here rather than taken from
``DDIMScheduler.step``/``reversed_step`` because those assume a fixed gap of ``T // n`` while
``set_timesteps`` spaces timesteps with ``linspace(...).round()``, so a strided encode and decode would not
mirror each other. With every step (``stride = 1``) the two agree, which the tests check.

One step function, :func:`ddim_step`, moves ``x_t`` to ``x_s`` for encoding (``s > t``), decoding (``s < t``) and
the classifier-free sampler. Its coefficients are Python floats computed before the loop (:class:`StepCoefficients`),
so a sampling loop reads nothing back from the device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from ..errors import require
from .acceleration import accelerated, autocast, memory_format

#: a guidance gives the gradient term g(x_t, t) of eps_hat = eps - sqrt(1 - abar_t) * g
Guidance = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class StepCoefficients:
    """Python-float coefficients of one DDIM step from paper timestep ``t`` to ``s`` with noise ``sigma``."""

    t: int
    s: int
    sqrt_abar: float  #: sqrt(abar_t)
    sqrt_one_minus_abar: float  #: sqrt(1 - abar_t)
    sqrt_abar_next: float  #: sqrt(abar_s)
    direction: float  #: sqrt(1 - abar_s - sigma^2)
    sigma: float = 0.0

    @classmethod
    def between(cls, abar: list[float], t: int, s: int, eta: float = 0.0) -> "StepCoefficients":
        """DDIM (Song et al. Eq. 12/16) from ``t`` to ``s``: ``sigma = eta sqrt((1 - abar_s)/(1 - abar_t) (1 - abar_t/abar_s))``
        (0 when encoding, ``s > t``)."""
        a, a_next = abar[t], abar[s]
        sigma = eta * math.sqrt(max((1 - a_next) / (1 - a) * (1 - a / a_next), 0.0)) if eta > 0 and s < t else 0.0
        return cls(t, s, math.sqrt(a), math.sqrt(1 - a), math.sqrt(a_next), math.sqrt(max(1 - a_next - sigma**2, 0.0)), sigma)


def ddim_step(x: torch.Tensor, eps: torch.Tensor, c: StepCoefficients, noise: torch.Tensor | None = None,
              clip: tuple[float, float] | None = None) -> torch.Tensor:
    """``x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps + sigma z`` with
    ``x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``, clamped to ``clip`` if given (MONAI's
    ``DDIMScheduler.step``, which keeps eps; :func:`clipped_epsilon` is guided-diffusion's variant)."""
    x0_hat = torch.sub(x, eps, alpha=c.sqrt_one_minus_abar).div_(c.sqrt_abar)
    if clip is not None:
        x0_hat.clamp_(*clip)
    out = x0_hat.mul_(c.sqrt_abar_next).add_(eps, alpha=c.direction)
    if noise is not None and c.sigma > 0:
        out.add_(noise, alpha=c.sigma)
    return out


def clipped_epsilon(x: torch.Tensor, eps: torch.Tensor, c: StepCoefficients, clip: tuple[float, float]) -> torch.Tensor:
    """The eps that predicts x_0 clamped to ``clip`` (guided-diffusion's ``clip_denoised``)."""
    x0_hat = torch.sub(x, eps, alpha=c.sqrt_one_minus_abar).div_(c.sqrt_abar).clamp_(*clip)
    return torch.sub(x, x0_hat, alpha=c.sqrt_abar).div_(c.sqrt_one_minus_abar)


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn on ``generator``'s device (a CPU generator with CUDA data
    works, and gives the same numbers on every device), then moved to ``x``'s device."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


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
        amp: bf16 on CUDA (weights cast once, one autocast region per loop; ignored on CPU).
        channels_last: channels-last memory format for 2D networks and images.
        compile: ``torch.compile`` the network (see :func:`~medi2i.diffusion.acceleration.accelerated`).
        progress: show a tqdm progress bar.
    """

    def __init__(self, scheduler, noise_level: int = 400, stride: int = 1, eta: float = 0.0,
                 clip_sample: tuple[float, float] | None = None, amp: bool = False, progress: bool = False,
                 channels_last: bool = False, compile: bool | dict = False):
        self.scheduler = scheduler
        self.noise_level, self.stride, self.eta = int(noise_level), int(stride), float(eta)
        self.clip_sample, self.amp, self.progress = clip_sample, amp, progress
        self.channels_last, self.compile = bool(channels_last), compile
        self.abar = [1.0] + scheduler.alphas_cumprod.double().tolist()
        self.network_evaluations = 0
        self.guidance_evaluations = 0

    def check(self) -> None:
        """Raise a one-line :class:`~medi2i.InputError` for settings outside their range."""
        num_train = int(self.scheduler.num_train_timesteps)
        require(1 <= self.noise_level <= num_train, "noise_level",
                f"L = {self.noise_level} must be in 1..T = {num_train} (the scheduler's number of timesteps)")
        require(self.stride >= 1, "stride", f"must be >= 1, got {self.stride}")
        require(self.eta >= 0, "eta", f"must be >= 0, got {self.eta}")
        prediction = getattr(self.scheduler, "prediction_type", "epsilon")
        require(prediction in ("epsilon", "v_prediction"), "prediction_type",
                f"DDIM here takes a network predicting 'epsilon' or 'v_prediction', got {prediction!r}")

    @property
    def timesteps(self) -> list[int]:
        """Visited paper timesteps ``0 = t_0 < t_1 < ... < t_n = L``."""
        self.check()
        return sorted(set(range(0, self.noise_level, self.stride)) | {self.noise_level})

    def steps(self, direction: str) -> list[StepCoefficients]:
        """The steps of ``"encode"`` (0 -> L) or ``"decode"`` (L -> 0), coefficients precomputed as floats."""
        ts = self.timesteps if direction == "encode" else self.timesteps[::-1]
        return [StepCoefficients.between(self.abar, t, s, self.eta) for t, s in zip(ts[:-1], ts[1:])]

    @staticmethod
    def model_timesteps(steps: list[StepCoefficients], x: torch.Tensor) -> list[torch.Tensor]:
        """The MONAI timestep tensors of every step, made in one transfer before the loop."""
        ts = torch.tensor([max(c.t - 1, 0) for c in steps], dtype=torch.long).to(x.device)
        return list(ts[:, None].expand(-1, x.shape[0]).unbind(0)) if steps else []

    def epsilon(self, network: nn.Module, x: torch.Tensor, t: torch.Tensor, **network_kwargs) -> torch.Tensor:
        """eps_theta(x_t, t) for MONAI timesteps ``t``; a learned variance's extra output channels are dropped. A
        network trained for the velocity (scheduler ``prediction_type="v_prediction"``, v = √ᾱ ε − √(1−ᾱ) x_0)
        gives ε = √ᾱ v + √(1−ᾱ) x_t."""
        out = network(x, timesteps=t, **network_kwargs)
        self.network_evaluations += x.shape[0]
        out = out[:, : x.shape[1]].float()
        if getattr(self.scheduler, "prediction_type", "epsilon") != "v_prediction":
            return out
        abar = self.scheduler.alphas_cumprod.to(x.device)[t].float().reshape(-1, *([1] * (x.ndim - 1)))
        return abar.sqrt() * out + (1 - abar).sqrt() * x.float()

    def _start(self, network: nn.Module, x: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
        return (accelerated(network, x, self.amp, self.channels_last, self.compile),
                memory_format(x.float(), self.channels_last))

    @torch.no_grad()
    def encode(self, network: nn.Module, x0: torch.Tensor, **network_kwargs) -> torch.Tensor:
        """x_0 -> x_L by deterministic DDIM (Eq. 4, generalised to strides)."""
        network, x = self._start(network, x0)
        steps = self.steps("encode")
        with autocast(self.amp, x):
            for c, t in self._bar(list(zip(steps, self.model_timesteps(steps, x))), "encode"):
                x = ddim_step(x, self.epsilon(network, x, t, **network_kwargs), c)
        return x

    def decode(self, network: nn.Module, x_noisy: torch.Tensor, guidance: Guidance | None = None,
               generator: torch.Generator | None = None, network_kwargs: dict | None = None,
               **guidance_kwargs) -> torch.Tensor:
        """x_L -> x_0 by DDIM (Eq. 3 with sigma_t = eta * DDIM's sigma) and eps_hat = eps - sqrt(1 - abar_t) g(x_t, t).

        ``guidance=None`` is plain DDIM. ``guidance_kwargs`` (e.g. per-sample ``desired_value``) go to the guidance;
        a guidance with a ``prepare(x, **kwargs)`` method checks and converts them once, before the loop.
        """
        network, x = self._start(network, x_noisy)
        steps = self.steps("decode")
        network_kwargs = network_kwargs or {}
        if guidance is not None and hasattr(guidance, "prepare"):
            guidance_kwargs = guidance.prepare(x, **guidance_kwargs)
        with autocast(self.amp, x):
            for c, t in self._bar(list(zip(steps, self.model_timesteps(steps, x))), "decode"):
                with torch.no_grad():
                    eps = self.epsilon(network, x, t, **network_kwargs)
                if self.clip_sample is not None:  # before the guidance shifts eps
                    eps = clipped_epsilon(x, eps, c, self.clip_sample)
                if guidance is not None:
                    eps = torch.sub(eps, guidance(x, t, **guidance_kwargs).float(), alpha=c.sqrt_one_minus_abar)
                    self.guidance_evaluations += x.shape[0]
                noise = randn_like(x, generator) if self.eta > 0 and c.s > 0 else None
                with torch.no_grad():
                    x = ddim_step(x, eps, c, noise)
        return x

    def translate(self, network: nn.Module, x0: torch.Tensor, guidance: Guidance | None = None,
                  generator: torch.Generator | None = None, **guidance_kwargs) -> torch.Tensor:
        """Encode to L, then decode with guidance (Algorithms 1 and 2)."""
        return self.decode(network, self.encode(network, x0), guidance, generator, **guidance_kwargs)

    def _bar(self, pairs, desc):
        return tqdm(pairs, desc=desc, leave=False, unit="step") if self.progress else pairs
