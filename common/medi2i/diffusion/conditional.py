"""Conditional DDPM of Med-cDiff: eps_theta(x_t, y, t) with the condition image y concatenated to x_t as channels.

Training is MONAI's: ``DiffusionInferer`` in ``mode="concat"`` fed by :class:`ConcatPrepareBatch` (MONAI's
``DiffusionPrepareBatch`` with a condition, plus the ``mode`` keyword its trainer call lacks).

Sampling (:class:`ConditionalSampler`) starts from x_T ~ N(0, I) and runs either

* ``"ancestral"``: the paper's sampler, every one of the T steps of
  ``x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma_t z`` with ``sigma_t^2 = beta_t``
  (MONAI ``DDPMScheduler(variance_type="fixed_large")`` through ``DiffusionInferer.sample``), or
* ``"ddim"``: deterministic DDIM (eta = 0 by default) over ``num_inference_steps`` evenly spaced timesteps
  (:class:`~medi2i.diffusion.DDIMSampler`, whose strided steps are consistent, unlike MONAI's ``DDIMScheduler``).
"""

from __future__ import annotations

import torch
from monai.engines import DiffusionPrepareBatch
from monai.inferers import DiffusionInferer, Inferer
from torch import nn

from ..errors import require
from .acceleration import accelerated, autocast
from .ddim import DDIMSampler


class ConcatPrepareBatch(DiffusionPrepareBatch):
    """``DiffusionPrepareBatch(num_train_timesteps, condition_name)`` whose inferer call also gets ``mode="concat"``."""

    def __init__(self, num_train_timesteps: int, condition_name: str = "condition"):
        super().__init__(num_train_timesteps, condition_name)

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        images, target, args, infer_kwargs = super().__call__(batchdata, device, non_blocking, **kwargs)
        return images, target, args, {**infer_kwargs, "mode": "concat"}


class ConcatConditioned(nn.Module):
    """``network(cat([x, condition]), timesteps)``: ``condition`` given here or in each call (what DDIM sampling
    calls, with the condition among its ``network_kwargs``)."""

    def __init__(self, network: nn.Module, condition: torch.Tensor | None = None):
        super().__init__()
        self.network, self.condition = network, condition

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        condition = self.condition if condition is None else condition
        return self.network(torch.cat([x, condition.to(x.dtype)], 1), timesteps=timesteps, **kwargs)


class ConditionalSampler:
    """Draw x_0 ~ p_theta(x_0 | y).

    Args:
        scheduler: MONAI ``DDPMScheduler`` of the training (T, betas); ancestral sampling uses its ``step``, so it
            should have ``variance_type="fixed_large"`` (sigma_t^2 = beta_t) and ``clip_sample`` as wanted.
        method: ``"ancestral"`` (all T steps, the paper) or ``"ddim"``.
        num_inference_steps: DDIM steps (T must be a multiple; e.g. 50, 100, 250 for T = 2000).
        eta: DDIM stochasticity (0 = deterministic).
        out_channels: channels of x (the network's first output channels are eps).
        clip: clamp the final sample to [-1, 1].
        clip_denoised: clamp the predicted x_0 to [-1, 1] in every DDIM step (Ho et al.'s and guided-diffusion's
            ``clip_denoised``; the ancestral sampler does the same through the scheduler's ``clip_sample``).
        amp, channels_last, compile: speed settings of both methods (see :class:`~medi2i.diffusion.DDIMSampler`).
        progress: tqdm progress bar.
    """

    def __init__(self, scheduler, method: str = "ancestral", num_inference_steps: int = 100, eta: float = 0.0,
                 out_channels: int = 1, clip: bool = True, clip_denoised: bool = True, amp: bool = False,
                 progress: bool = False, channels_last: bool = False, compile: bool | dict = False):
        self.scheduler, self.method, self.eta = scheduler, method, float(eta)
        self.num_inference_steps, self.out_channels = int(num_inference_steps), int(out_channels)
        self.clip, self.clip_denoised, self.amp, self.progress = clip, clip_denoised, amp, progress
        self.channels_last, self.compile = channels_last, compile
        self._denoiser: tuple[nn.Module, nn.Module] | None = None
        self.network_evaluations = 0

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.num_train_timesteps)

    def check(self) -> None:
        """One-line errors for settings out of range."""
        require(self.method in ("ancestral", "ddim"), "sampling_method", f"must be 'ancestral' or 'ddim', got {self.method!r}")
        if self.method == "ddim":
            n, steps = self.num_train_timesteps, self.num_inference_steps
            require(1 <= steps <= n and n % steps == 0, "num_inference_steps",
                    f"DDIM steps must divide T = {n} (e.g. 50, 100, 250), got {steps}")

    @property
    def steps(self) -> int:
        """Network evaluations per image."""
        return self.num_train_timesteps if self.method == "ancestral" else self.num_inference_steps

    def __call__(self, network: nn.Module, condition: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self.check()
        condition = condition.float()
        shape = (condition.shape[0], self.out_channels, *condition.shape[2:])
        noise = torch.randn(shape, generator=generator, device="cpu").to(condition.device)
        if self.method == "ancestral":
            with torch.no_grad(), autocast(self.amp, condition):
                self.scheduler.set_timesteps(self.num_train_timesteps)
                network = accelerated(network, condition, self.amp, self.channels_last, self.compile)
                x = DiffusionInferer(self.scheduler).sample(noise, _FirstChannels(network, self.out_channels), self.scheduler,
                                                             verbose=self.progress, conditioning=condition, mode="concat")
        else:
            n = self.num_train_timesteps
            ddim = DDIMSampler(self.scheduler, noise_level=n, stride=n // self.num_inference_steps, eta=self.eta,
                               clip_sample=(-1.0, 1.0) if self.clip_denoised else None, amp=self.amp,
                               progress=self.progress, channels_last=self.channels_last, compile=self.compile)
            x = ddim.decode(self.denoiser(network), noise, generator=generator, network_kwargs={"condition": condition})
        self.network_evaluations += shape[0] * self.steps
        return x.float().clamp(-1, 1) if self.clip else x.float()

    def denoiser(self, network: nn.Module) -> nn.Module:
        """``eps(x_t, t, condition)`` of ``network``, one object per network (so that its bf16 copy or compiled
        form is made once)."""
        if self._denoiser is None or self._denoiser[0] is not network:
            self._denoiser = (network, ConcatConditioned(_FirstChannels(network, self.out_channels)))
        return self._denoiser[1]


class _FirstChannels(nn.Module):
    """The network's first ``channels`` outputs (eps; drops learned-variance channels if any)."""

    def __init__(self, network: nn.Module, channels: int):
        super().__init__()
        self.network, self.channels = network, channels

    def forward(self, x, timesteps, **kwargs):
        kwargs.pop("context", None)
        return self.network(x, timesteps=timesteps.expand(x.shape[0]).long())[:, : self.channels]


class ConditionalDiffusionInferer(Inferer):
    """``inferer(condition, network)`` -> restored image: the whole conditional sampling (MONAI Label contract).

    Accepts ``(B, C, H, W)`` or one-slice volumes ``(B, C, H, W, 1)`` (returned in the same form). With
    ``keep_known`` (inpainting) the condition is ``[x * (1 - m), m]`` and only the masked pixels are replaced:
    ``out = x * (1 - m) + sample * m``. ``seed`` makes every call draw the same noise (None: the global RNG).
    """

    def __init__(self, sampler: ConditionalSampler, keep_known: bool = False, seed: int | None = 0):
        super().__init__()
        self.sampler, self.keep_known, self.seed = sampler, keep_known, seed

    def check(self) -> None:
        self.sampler.check()

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args, **kwargs) -> torch.Tensor:
        slab = inputs.ndim == 5 and inputs.shape[-1] == 1
        y = torch.as_tensor(inputs[..., 0] if slab else inputs).float()
        generator = None if self.seed is None else torch.Generator().manual_seed(int(self.seed))
        with torch.random.fork_rng(devices=[y.device] if y.is_cuda else []):
            if generator is not None:
                torch.manual_seed(int(self.seed))
            out = self.sampler(network, y, generator)
        if self.keep_known:
            require(y.shape[1] == 2 * out.shape[1], "condition",
                    f"inpainting needs the masked image and its mask as channels, got {y.shape[1]} channel(s)")
            known, mask = y[:, : out.shape[1]], y[:, out.shape[1] :]
            out = known * (1 - mask) + out * mask
        return out.unsqueeze(-1) if slab else out
