"""Undo :class:`~medi2i.data.Normalised` on a restored image (``postprocessing`` of the Med-cDiff bundles)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.transforms import MapTransform


class Restored(MapTransform):
    """``pred`` ``(C, S, S)`` in [-1, 1] -> the input's in-plane size, intensity units and affine (a MetaTensor shaped
    like the loaded input: ``(C, H, W)`` or the one-slice ``(C, H, W, 1)``).

    ``source_key`` holds what :class:`~medi2i.data.Normalised` kept of the input. With ``mask_key`` (inpainting) the
    pixels outside the hole mask (the user's mask at the input's size, else the drawn one resized) are the input's
    own: only the masked region is replaced.
    """

    def __init__(self, keys="pred", source_key: str = "image_source", mask_key: str | None = None, mode: str = "bicubic"):
        super().__init__(keys)
        self.source_key, self.mask_key, self.mode = source_key, mask_key, mode

    def __call__(self, data):
        d = dict(data)
        source = d[self.source_key]
        original = source["image"]
        size = tuple(original.shape[1:])
        lo, hi = source["range"]
        for key in self.key_iterator(d):
            pred = torch.as_tensor(d[key]).detach().float().cpu()
            pred = pred[..., 0] if pred.ndim == 4 else pred
            if tuple(pred.shape[1:]) != size:
                pred = F.interpolate(pred[None], size=size, mode=self.mode, antialias=self.mode in ("bilinear", "bicubic"))[0]
            pred = lo + (pred.clamp(-1, 1) + 1) / 2 * (hi - lo)
            if self.mask_key and d.get(self.mask_key) is not None:
                mask = source.get("mask")  # the user's mask as given, else the drawn one brought to the input's size
                if mask is None:
                    mask = torch.as_tensor(d[self.mask_key]).float().cpu()
                    mask = F.interpolate(mask.reshape(1, 1, *mask.shape[-2:]), size=size, mode="nearest")[0]
                pred = original * (1 - mask) + pred * mask
            d[key] = MetaTensor(pred.unsqueeze(-1) if source["ndim"] == 4 else pred, affine=source["affine"])
        return d
