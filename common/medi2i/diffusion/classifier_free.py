"""Class-conditional DDPM with classifier-free guidance (Ho & Salimans 2022; Conditional Diffusion MNIST, which the
contrast-generation paper builds on).

* Training: MONAI's ``DiffusionModelUNet(num_class_embeds=K + 1)``; the class label is replaced by the null class
  ``K`` with probability 0.1 (:class:`~medi2i.engines.LabelDropoutPrepareBatch`), so one network gives both the
  conditional ``eps(x_t, c)`` and the unconditional ``eps(x_t, null)`` prediction.
  :class:`ClassConditionalDiffusionInferer` is MONAI's ``DiffusionInferer`` that passes ``class_labels``.
* Sampling: ``eps_hat = (1 + w) * eps(x_t, c) - w * eps(x_t, null)`` (:func:`guided_epsilon`) in every step of
  DDPM ancestral sampling (``DDPMScheduler.step``, all T steps) or DDIM (every ``T / n``-th step of the
  ``DDIMScheduler``'s schedule, by the collection's one DDIM step, :func:`~medi2i.diffusion.ddim.ddim_step`)
  (:class:`ClassConditionalSampler`).
"""

from __future__ import annotations

import torch
from monai.inferers import DiffusionInferer
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler
from torch import nn
from tqdm import tqdm

from ..errors import require
from .acceleration import accelerated, autocast, memory_format
from .ddim import DDIMSampler, StepCoefficients, ddim_step, randn_like
from .guidance import _per_sample


def guided_epsilon(network: nn.Module, x: torch.Tensor, timesteps: torch.Tensor, class_labels: torch.Tensor,
                   guidance_weight, null_class: int, guided: bool | None = None) -> torch.Tensor:
    """Classifier-free guidance ``(1 + w) eps(x, c) - w eps(x, null)``; ``w`` a scalar or one per sample.

    The conditional and unconditional predictions come from one batched network call; with ``w = 0`` everywhere
    only the conditional one is computed. ``guided`` (whether any ``w != 0``) can be given by a sampling loop
    that decided it once; None reads it from ``w``.
    """
    w = _per_sample(guidance_weight, x.shape[0], x, x.dtype).view(-1, *([1] * (x.ndim - 1)))
    if not (_any_nonzero(w) if guided is None else guided):
        return network(x, timesteps=timesteps, class_labels=class_labels)
    null = torch.full_like(class_labels, int(null_class))
    out = network(torch.cat([x, x]), timesteps=torch.cat([timesteps, timesteps]), class_labels=torch.cat([class_labels, null]))
    conditional, unconditional = out.chunk(2)
    return (1 + w) * conditional - w * unconditional


def _any_nonzero(w) -> bool:
    return bool(torch.as_tensor(w).ne(0).any())


class ClassConditionalDiffusionInferer(DiffusionInferer):
    """``DiffusionInferer`` for class-conditional networks: ``inferer(x_0, network, noise, timesteps, class_labels)``
    adds noise with the scheduler and returns ``network(x_t, timesteps, class_labels=class_labels)``."""

    def __call__(self, inputs: torch.Tensor, diffusion_model: nn.Module, noise: torch.Tensor,  # type: ignore[override]
                 timesteps: torch.Tensor, class_labels: torch.Tensor | None = None, **_) -> torch.Tensor:
        noisy = self.scheduler.add_noise(original_samples=inputs, noise=noise, timesteps=timesteps)
        return diffusion_model(noisy, timesteps=timesteps, class_labels=class_labels)


class ClassConditionalSampler:
    """Generate from noise with classifier-free guidance through a MONAI scheduler.

    Args:
        scheduler: ``DDPMScheduler`` (ancestral sampling, Ho et al. Algorithm 2, every one of the T steps) or
            ``DDIMScheduler`` (``num_inference_steps`` steps ``T-1, T-1-T/n, ..., T/n-1``, so that the fixed gap
            ``T // n`` its ``step`` assumes is the gap actually visited; T must be a multiple of n).
        num_inference_steps: DDIM steps (ignored for DDPM, which always takes all T).
        eta: DDIM stochasticity (0 = deterministic).
        method: the requested method ("ddpm" or "ddim"), checked against the scheduler (None: from the scheduler).
        progress: tqdm progress bar.
        amp, channels_last, compile: speed settings (see :class:`~medi2i.diffusion.DDIMSampler`).
    """

    def __init__(self, scheduler, num_inference_steps: int | None = None, eta: float = 0.0, method: str | None = None,
                 progress: bool = False, amp: bool = False, channels_last: bool = False, compile: bool | dict = False):
        self.scheduler, self.eta, self.progress, self.requested = scheduler, float(eta), progress, method
        self.amp, self.channels_last, self.compile = amp, channels_last, compile
        self.num_train_timesteps = int(scheduler.num_train_timesteps)
        self.num_inference_steps = int(num_inference_steps or self.num_train_timesteps)
        self.network_evaluations = 0

    @property
    def method(self) -> str:
        if isinstance(self.scheduler, DDIMScheduler):
            return "ddim"
        require(isinstance(self.scheduler, DDPMScheduler), "scheduler",
                f"expected a MONAI DDPMScheduler or DDIMScheduler, got {type(self.scheduler).__name__}")
        return "ddpm"

    def check(self) -> None:
        """One-line errors for settings outside their range."""
        if self.requested is not None:
            require(str(self.requested).lower() in ("ddpm", "ddim"), "sampler", f"unknown sampler '{self.requested}' (ddpm or ddim)")
            require(str(self.requested).lower() == self.method, "sampler",
                    f"'{self.requested}' needs a {self.requested.upper()}Scheduler, got {type(self.scheduler).__name__}")
        if self.method == "ddim":
            n, num_train = self.num_inference_steps, self.num_train_timesteps
            require(1 <= n <= num_train and num_train % n == 0, "num_inference_steps",
                    f"DDIM needs a divisor of T = {num_train} (got {n})")
            require(self.eta >= 0, "eta", f"must be >= 0, got {self.eta}")

    @property
    def timesteps(self) -> torch.Tensor:
        """MONAI timesteps visited, from the noisiest to the cleanest."""
        self.check()
        if self.method == "ddpm":
            return torch.arange(self.num_train_timesteps - 1, -1, -1)
        gap = self.num_train_timesteps // self.num_inference_steps
        return self.num_train_timesteps - 1 - gap * torch.arange(self.num_inference_steps)

    def _ddim_steps(self) -> dict[int, StepCoefficients]:
        """MONAI timestep -> DDIM step to the next visited one (paper timesteps are MONAI's + 1, 0 the clean image)."""
        abar = DDIMSampler(self.scheduler).abar
        gap = self.num_train_timesteps // self.num_inference_steps
        return {t: StepCoefficients.between(abar, t + 1, t + 1 - gap, self.eta) for t in self.timesteps.tolist()}

    def _step(self, eps: torch.Tensor, t: int, x: torch.Tensor, generator, ddim_steps) -> torch.Tensor:
        if self.method == "ddpm":
            return self.scheduler.step(eps, t, x, generator=generator)[0]
        c, clip = ddim_steps[t], tuple(self.scheduler.clip_sample_values) if self.scheduler.clip_sample else None
        return ddim_step(x, eps, c, randn_like(x, generator) if self.eta > 0 and c.s > 0 else None, clip)

    @torch.no_grad()
    def sample(self, network: nn.Module, noise: torch.Tensor, class_labels: torch.Tensor, guidance_weight,
               null_class: int, generator: torch.Generator | None = None, trajectory_frames: int = 0):
        """``x_T = noise -> x_0``; returns ``(x_0, trajectory)`` with ``trajectory`` a list of ``(t, x_t)`` at
        ``trajectory_frames`` evenly spaced steps (empty when 0)."""
        timesteps = self.timesteps
        keep = set(torch.linspace(0, len(timesteps) - 1, trajectory_frames).round().long().tolist()) if trajectory_frames else set()
        labels = torch.as_tensor(class_labels, device=noise.device).long().reshape(-1)
        w = _per_sample(guidance_weight, noise.shape[0], noise, noise.dtype)
        guided = _any_nonzero(w)  # read once, not in every step
        ddim_steps = self._ddim_steps() if self.method == "ddim" else None
        t_batches = timesteps.to(noise.device)[:, None].expand(-1, noise.shape[0])
        network = accelerated(network, noise, self.amp, self.channels_last, self.compile)
        x, trajectory = memory_format(noise, self.channels_last), []
        steps = tqdm(timesteps.tolist(), desc=f"sampling ({self.method})", leave=False, unit="step") if self.progress else timesteps.tolist()
        with autocast(self.amp, x):
            for k, t in enumerate(steps):
                eps = guided_epsilon(network, x, t_batches[k], labels, w, null_class, guided)
                self.network_evaluations += x.shape[0] * (2 if guided else 1)
                x = self._step(eps.float(), t, x, generator, ddim_steps)
                if k in keep:
                    trajectory.append((t, x.detach().cpu()))
        return x, trajectory
