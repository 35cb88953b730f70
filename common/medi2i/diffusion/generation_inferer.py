"""MONAI ``Inferer`` that generates slices of a requested contrast, so that ``inferer(inputs, network)`` (the call of
MONAI's engines and MONAI Label's ``BundleInferTask``) returns a whole classifier-free-guided sample.

The input image only fixes the output shape ``(B, C, H, W)`` (or ``(B, C, H, W, 1)``, returned in the same form):
its content is not used. The contrast and the guidance weight ``w`` come from the inferer's configuration
(``contrast`` and ``guidance_weight`` in ``inference.json``), or per call as keyword arguments
(``contrast="FLAIR"`` or ``class_labels=tensor``, ``guidance_weight=2.0``, and ``noise``/``generator`` to choose x_T).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.inferers import Inferer

from ..data.contrasts import ContrastSet
from ..errors import require
from .classifier_free import ClassConditionalSampler


def check_guidance_weight(w) -> float:
    """A guidance weight as a float; one-line error when it is negative or not a number."""
    try:
        value = float(w)
    except (TypeError, ValueError):
        value = float("nan")
    require(value >= 0, "guidance_weight", f"w must be a number >= 0 (w = 0 is the plain conditional model), got {w}")
    return value


class ContrastGenerationInferer(Inferer):
    """Args:
        sampler: a :class:`~medi2i.diffusion.ClassConditionalSampler` (DDPM or DDIM).
        contrasts: the contrast names the network was trained on, in label order.
        contrast: default requested contrast (name or label).
        guidance_weight: default w.
        seed: seed of the initial noise (None: torch's global generator).
        trajectory_frames: when > 0, ``self.last_trajectory`` keeps that many ``(t, x_t)`` frames of the last call.
    """

    def __init__(self, sampler: ClassConditionalSampler, contrasts: Sequence[str], contrast: str | int | None = None,
                 guidance_weight: float = 0.0, seed: int | None = 0, trajectory_frames: int = 0):
        super().__init__()
        self.sampler, self.contrasts = sampler, ContrastSet(contrasts)
        self.contrast = self.contrasts.names[0] if contrast is None else contrast
        self.guidance_weight, self.seed, self.trajectory_frames = guidance_weight, seed, int(trajectory_frames)
        self.last_trajectory: list = []

    def check(self) -> None:
        """Validate settings before any work (one-line errors)."""
        self.sampler.check()
        self.contrasts.index(self.contrast)
        check_guidance_weight(self.guidance_weight)

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module, *args, contrast=None, class_labels=None,
                 guidance_weight=None, generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
                 **kwargs) -> torch.Tensor:
        slab = inputs.ndim == 5 and inputs.shape[-1] == 1
        shape = tuple(inputs.shape[:-1] if slab else inputs.shape)
        device = inputs.device
        if class_labels is None:
            class_labels = [self.contrasts.index(self.contrast if contrast is None else contrast)] * shape[0]
        labels = torch.as_tensor(class_labels, device=device).long().reshape(-1)
        require(labels.numel() == shape[0], "class_labels", f"{labels.numel()} labels for {shape[0]} images")
        w = self.guidance_weight if guidance_weight is None else guidance_weight
        if not torch.is_tensor(w):
            w = check_guidance_weight(w)
        if generator is None and self.seed is not None:
            generator = torch.Generator(device=device).manual_seed(int(self.seed))
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=device)
        require(tuple(noise.shape) == shape, "noise", f"shape {tuple(noise.shape)} differs from the output shape {shape}")
        out, self.last_trajectory = self.sampler.sample(network, noise, labels, w, self.contrasts.null_class,
                                                        generator, self.trajectory_frames)
        return out.unsqueeze(-1) if slab else out
