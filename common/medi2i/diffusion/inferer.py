"""MONAI inferer that runs a whole guided translation, so that ``inferer(inputs, network)`` (the call MONAI's
engines and MONAI Label's ``BundleInferTask`` make) returns the translated image."""

from __future__ import annotations

import torch
from monai.inferers import Inferer

from ..networks.checkpoints import load_weights
from .ddim import DDIMSampler, Guidance


class GuidedTranslationInferer(Inferer):
    """DDIM-encode the inputs to L and decode with ``guidance`` (Algorithms 1-2 of the Swiss Army Knife).

    Accepts ``(B, C, H, W)`` or one-slice volumes ``(B, C, H, W, 1)`` (returned in the same form); keyword
    arguments (e.g. per-sample ``desired_value``) are passed to the guidance. ``checkpoints``
    (``[(module, path, what), ...]``, e.g. the regressor's weights) are loaded once, on the first call or by
    :meth:`load_checkpoints`, so that a caller holding only the diffusion model (MONAI Label) gets a working guidance.
    """

    def __init__(self, sampler: DDIMSampler, guidance: Guidance | None = None, checkpoints=()):
        super().__init__()
        self.sampler, self.guidance = sampler, guidance
        self.checkpoints, self._loaded = list(checkpoints), False

    def load_checkpoints(self, map_location=None) -> None:
        """Load the guidance networks' weights (strictly; one-line errors); later calls do nothing."""
        if not self._loaded:
            for module, path, what in self.checkpoints:
                load_weights(module, path, what, map_location=map_location)
            self._loaded = True

    def check(self) -> None:
        """Validate the sampler settings before any work (one-line errors)."""
        self.sampler.check()

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module, *args, **kwargs) -> torch.Tensor:
        self.load_checkpoints(map_location=inputs.device)
        slab = inputs.ndim == 5 and inputs.shape[-1] == 1
        x = torch.as_tensor(inputs[..., 0] if slab else inputs).float()
        out = self.sampler.translate(network, x, self.guidance, **kwargs)
        return out.unsqueeze(-1) if slab else out
