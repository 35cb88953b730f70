"""Tumour size measured on an image (no label needed), to check what a translation produced.

Whole-tumour proxy: FLAIR hyperintensity. Pixels of the brain whose FLAIR exceeds ``ratio`` times the brain's
median FLAIR, holes filled (necrotic cores are FLAIR-dark), form the tumour mask; its size is relative to the
brain as for the regression label. The ratio is scale-free, so it does not depend on intensity normalisation.
:class:`SegmentedTumourSize` measures the same size with a segmenter trained on labels instead (independent of both
the FLAIR threshold and the guiding regressor).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import binary_dilation, binary_fill_holes

from ..data.brats import MODALITIES


class TumourSize:
    """``measure(images, brain) -> (sizes (B,), masks (B, 1, H, W))`` on (B, 4, H, W) images in t1/t1ce/t2/flair order.

    Tumour: FLAIR above ``ratio`` x the median brain FLAIR, holes filled. The median is each image's own (a scale-free
    measure) unless ``reference`` images are given (e.g. the input of a translation: a fixed threshold, so that a
    globally brighter or darker output is not read as a smaller or larger tumour)."""

    def __init__(self, ratio: float = 1.4, channel: str = "flair"):
        self.ratio, self.channel = float(ratio), MODALITIES.index(channel)

    def masks(self, images: torch.Tensor, brain: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        reference = images if reference is None else reference
        out = torch.zeros_like(brain, dtype=torch.bool)
        for b in range(images.shape[0]):
            inside = brain[b, 0].bool()
            if not inside.any():
                continue
            threshold = self.ratio * reference[b, self.channel][inside].median()
            hyper = (images[b, self.channel] > threshold) & inside
            out[b, 0] = torch.from_numpy(binary_fill_holes(hyper.cpu().numpy())).to(brain.device) & inside
        return out

    def __call__(self, images: torch.Tensor, brain: torch.Tensor,
                 reference: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        masks = self.masks(images, brain, reference)
        return relative_size(masks, brain), masks


class SegmentedTumourSize:
    """``measure(images, brain) -> (sizes (B,), masks (B, 1, H, W))`` like :class:`TumourSize`, with the tumour
    ``sigmoid(S(x, 0)) > threshold`` inside the brain, S a segmenter of clean and noisy images ``S(x, t)`` (the
    tumour-inpainting bundle's guidance segmenter, trained on the whole-tumour labels)."""

    def __init__(self, segmenter: torch.nn.Module, threshold: float = 0.5):
        self.segmenter, self.threshold = segmenter, float(threshold)

    @torch.no_grad()
    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """``sigmoid(S(x, 0)) > threshold`` as (B, 1, H, W) booleans on the segmenter's device (whole image)."""
        device = next(self.segmenter.parameters(), images).device  # a parameter-free S runs where the images are
        t = torch.zeros(images.shape[0], dtype=torch.long, device=device)
        return torch.sigmoid(self.segmenter.eval()(images.float().to(device), timesteps=t)) > self.threshold

    def __call__(self, images: torch.Tensor, brain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        masks = self.segment(images).to(brain.device) & brain.bool()
        return relative_size(masks, brain), masks


def relative_size(masks: torch.Tensor, brain: torch.Tensor) -> torch.Tensor:
    """Tumour pixels / brain pixels per image of (B, 1, H, W) masks."""
    return masks.flatten(1).sum(1).float() / brain.flatten(1).sum(1).clamp_min(1).float()


def dilate(mask: torch.Tensor, iterations: int) -> torch.Tensor:
    """Binary dilation of a (B, 1, *spatial) mask by ``iterations`` pixels (scipy)."""
    if iterations <= 0:
        return mask.bool()
    arr = np.stack([binary_dilation(m[0].cpu().numpy(), iterations=iterations) for m in mask])
    return torch.from_numpy(arr[:, None]).to(mask.device)
