"""ALDM inference (Sec. 3.3): source volume -> encoder -> MS-SPADE (target-like latents) -> conditional DDIM in
latent space -> decoder, for a per-sample target; one call translates one source to many targets.

``method`` selects the full model or a Table 3 ablation:

* ``"aldm"``: ``z_cond = S(E(x), tar)``, DDIM with ``eps(concat(z_cond, z_t), t, y)`` (ours);
* ``"palette"``: ``z_cond = E(x)`` (Table 3 (b), a diffusion model trained with ``condition="source"``);
* ``"diffusion_only"``: no conditioning input (``z_cond = 0``, Table 3 (a), trained with ``condition="none"``); the
  source enters as the starting point, SDEdit-style: DDIM from ``x_L = sqrt(abar_L) E(x) + sqrt(1 - abar_L) eps``
  with ``L = source_noise_level``;
* ``start_noise_level`` (``"aldm"``/``"palette"``, default None: the paper's pure noise) starts DDIM instead from the
  conditioning latents noised to that level, ``x_L = sqrt(abar_L) z_cond + sqrt(1 - abar_L) eps`` (a deviation for
  under-trained denoisers that do not yet use their condition at high noise);
* ``"spade_only"``: ``D(S(E(x), tar))`` without diffusion (Table 3 (c));
* ``"identity"``: the source itself (already scaled to [0, 1]) - the floor every method must beat.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.inferers import Inferer
from torch import nn

from .ddim import DDIMSampler, randn_like

METHODS = ("aldm", "palette", "diffusion_only", "spade_only", "identity")


class ConcatConditionDenoiser(nn.Module):
    """``eps(x_t, t, condition, context) = unet(concat(condition, x_t), t, context)`` (Palette-style input)."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor, context: torch.Tensor | None = None):
        return self.unet(torch.cat([condition.to(x.dtype), x], 1), timesteps=timesteps, context=context)


class LatentTranslationInferer(Inferer):
    """``inferer(source_images (B, 1, *spatial), unet, target=(B,) indices)`` -> translated ``(B, 1, *spatial)``.

    Args:
        autoencoder: trained MONAI ``VQVAE`` (frozen).
        spade: trained :class:`~medi2i.networks.MSSPADENetwork`.
        scheduler: the MONAI scheduler of training (its ``alphas_cumprod``).
        num_modalities: M, the one-hot size.
        num_inference_steps: DDIM steps (``T // steps`` apart).
        method: one of :data:`METHODS`.
        latent_scale: factor applied to latents in training (the decoder gets ``z / latent_scale``).
        source_noise_level: L of ``"diffusion_only"`` (1..T).
        start_noise_level: L of ``"aldm"`` and ``"palette"`` (1..T); None starts from pure noise (the paper).
        amp: bf16 autocast on CUDA. progress: tqdm bar over DDIM steps.
    """

    def __init__(self, autoencoder: nn.Module, spade: nn.Module | None, scheduler, num_modalities: int,
                 num_inference_steps: int = 50, method: str = "aldm", latent_scale: float = 1.0, amp: bool = False,
                 progress: bool = False, source_noise_level: int = 500, target: int | None = None,
                 start_noise_level: int | None = None):
        super().__init__()
        self.target = target  # default target index when a caller passes none (MONAI Label: inferer(inputs, network))
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.autoencoder, self.spade, self.scheduler = autoencoder, spade, scheduler
        self.num_modalities, self.method, self.latent_scale = int(num_modalities), method, float(latent_scale)
        self.num_inference_steps, self.amp, self.progress = int(num_inference_steps), amp, progress
        self.source_noise_level = int(source_noise_level)
        self.start_noise_level = None if start_noise_level is None else int(start_noise_level)

    def sampler(self, noise_level: int | None = None) -> DDIMSampler:
        """DDIM from ``noise_level`` (default T) with steps ``T // num_inference_steps`` apart."""
        steps = self.num_inference_steps
        num_train = int(self.scheduler.num_train_timesteps)
        return DDIMSampler(self.scheduler, noise_level=noise_level or num_train, stride=max(1, num_train // max(1, steps)),
                           amp=self.amp, progress=self.progress)

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor, network: nn.Module | None = None, *args, target=None, generator=None,
                 **kwargs) -> torch.Tensor:
        x = torch.as_tensor(inputs).float()
        if self.method == "identity":
            return x
        self.autoencoder.eval()
        target = self.target if target is None else target
        if target is None:
            raise ValueError("no target modality: pass target=<index> or construct the inferer with target")
        target = torch.as_tensor(target, device=x.device).long().reshape(-1).expand(x.shape[0])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp and x.is_cuda):
            z = self.autoencoder.encode_stage_2_inputs(x).float() * self.latent_scale
            if self.method in ("aldm", "spade_only"):
                self.spade.eval()
                z = self.spade(z, target).float()
        if self.method != "spade_only":
            network.eval()
            context = F.one_hot(target, self.num_modalities).float().unsqueeze(1)
            noise = randn_like(z, generator)
            condition = torch.zeros_like(z) if self.method == "diffusion_only" else z
            level = self.source_noise_level if self.method == "diffusion_only" else self.start_noise_level
            if level is not None:  # x_L = sqrt(abar_L) z + sqrt(1 - abar_L) eps: MONAI timestep L - 1
                noise = self.scheduler.add_noise(z, noise, torch.full((z.shape[0],), level - 1, device=z.device).long())
            z = self.sampler(level).decode(ConcatConditionDenoiser(network), noise,
                                           network_kwargs={"condition": condition, "context": context})
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp and x.is_cuda):
            return self.autoencoder.decode_stage_2_outputs(z / self.latent_scale).float()
