"""MONAI inferer that runs a whole guided translation, so that ``inferer(inputs, network)`` (the call MONAI's
engines and MONAI Label's ``BundleInferTask`` make) returns the translated image."""

from __future__ import annotations

import torch
from monai.inferers import Inferer

from .ddim import DDIMSampler, Guidance


class GuidedTranslationInferer(Inferer):
    """DDIM-encode the inputs to L and decode with ``guidance`` (Algorithms 1-2 of the Swiss Army Knife).

    Accepts ``(B, C, H, W)`` or one-slice volumes ``(B, C, H, W, 1)`` (returned in the same form); keyword
    arguments (e.g. per-sample ``desired_value``) are passed to the guidance. ``guidance_inputs`` maps a guidance
    keyword to a function of the clean inputs ``(B, C, H, W)`` that supplies it when the call does not (e.g. the
    desired mask z drawn for each image), so ``inferer(inputs, network)`` alone runs the whole task.
    The guidance network's weights (its ``checkpoint``) are loaded on the first call or by :meth:`load`, so that a
    caller holding only the diffusion model (MONAI Label) gets a working guidance.

    ``repeats=k`` translates every input k times (e.g. towards k targets, guidance keywords given per output):
    the target-independent encoding runs once per input and the k decodings as one batch. :meth:`encode` and
    :meth:`decode` are the two halves, for callers that reuse an encoding (e.g. several stochastic decodings).
    """

    def __init__(self, sampler: DDIMSampler, guidance: Guidance | None = None, guidance_inputs: dict | None = None):
        super().__init__()
        self.sampler, self.guidance, self.guidance_inputs = sampler, guidance, dict(guidance_inputs or {})

    def check(self) -> None:
        """Validate the sampler settings before any work (one-line errors)."""
        self.sampler.check()

    def load(self, map_location=None) -> None:
        """Load the guidance network's weights now (strictly; one-line errors); later calls do nothing. The weights
        go to the guidance network's device (``map_location`` is accepted for the workflows' call)."""
        if hasattr(self.guidance, "load"):
            self.guidance.load()

    def encode(self, inputs: torch.Tensor, network: torch.nn.Module) -> torch.Tensor:
        """Clean ``(B, C, H, W)`` inputs -> x_L (deterministic DDIM encoding, Eq. 4)."""
        return self.sampler.encode(network, torch.as_tensor(inputs).float())

    def decode(self, x_noisy: torch.Tensor, network: torch.nn.Module, inputs: torch.Tensor | None = None,
               **kwargs) -> torch.Tensor:
        """x_L -> guided translation; ``guidance_inputs`` are made from the clean ``inputs`` (one per x_L)."""
        self.load()
        for key, make in self.guidance_inputs.items():
            if kwargs.get(key) is None:
                kwargs[key] = make(inputs)
        return self.sampler.decode(network, x_noisy, self.guidance, **kwargs)

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module, *args, repeats: int = 1, **kwargs) -> torch.Tensor:
        self.load()
        slab = inputs.ndim == 5 and inputs.shape[-1] == 1
        x = torch.as_tensor(inputs[..., 0] if slab else inputs).float()
        x_noisy = self.encode(x, network).repeat_interleave(repeats, 0)
        out = self.decode(x_noisy, network, x.repeat_interleave(repeats, 0), **kwargs)
        return out.unsqueeze(-1) if slab else out
