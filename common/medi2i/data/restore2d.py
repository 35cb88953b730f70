"""Postprocessing that puts a network output back on the input's grid.

:class:`RestoreFromSource` is the common part (read what the preprocessing kept, hand each ``pred`` to ``restore``);
:class:`Restored` undoes :class:`~medi2i.data.Normalised` (the Med-cDiff bundles). The canvas of generation and the
padded BraTS slice have their own subclasses next to their preprocessing (``canvas.py``, ``cases.py``).
"""

from __future__ import annotations

import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, Resize, ScaleIntensityRange
from monai.utils import convert_to_tensor


class RestoreFromSource(MapTransform):
    """Undo a preprocessing step on ``keys``: ``source`` is the data key where that step kept what is needed;
    subclasses implement :meth:`restore` on each ``pred`` as a CPU float ``(C, S, S)`` (a trailing one-slice axis
    is dropped first)."""

    def __init__(self, keys="pred", source: str = "image_source"):
        super().__init__(keys)
        self.source = source

    def restore(self, pred: torch.Tensor, kept, data: dict) -> MetaTensor:
        raise NotImplementedError

    def __call__(self, data):
        d = dict(data)
        kept = d[self.source]
        for key in self.key_iterator(d):
            pred = torch.as_tensor(d[key]).detach().float().cpu()
            d[key] = self.restore(pred[..., 0] if pred.ndim == 4 else pred, kept, d)
        return d


class Restored(RestoreFromSource):
    """``pred`` ``(C, S, S)`` in [-1, 1] -> the input's in-plane size, intensity units and affine (a MetaTensor shaped
    like the loaded input: ``(C, H, W)`` or the one-slice ``(C, H, W, 1)``).

    ``source_key`` holds what :class:`~medi2i.data.Normalised` kept of the input. With ``mask_key`` (inpainting) the
    pixels outside the hole mask (the user's mask at the input's size, else the drawn one resized) are the input's
    own: only the masked region is replaced.
    """

    def __init__(self, keys="pred", source_key: str = "image_source", mask_key: str | None = None, mode: str = "bicubic"):
        super().__init__(keys, source_key)
        self.mask_key, self.mode = mask_key, mode

    def restore(self, pred, source, data):
        original = source["image"]
        size = tuple(original.shape[1:])
        lo, hi = source["range"]
        if tuple(pred.shape[1:]) != size:
            pred = Resize(size, mode=self.mode, anti_aliasing=True)(pred, lazy=False).as_tensor()
        pred = convert_to_tensor(ScaleIntensityRange(a_min=-1.0, a_max=1.0, b_min=lo, b_max=hi, clip=True)(pred), track_meta=False)
        if self.mask_key and data.get(self.mask_key) is not None:
            mask = source.get("mask")  # the user's mask as given, else the drawn one brought to the input's size
            if mask is None:
                mask = torch.as_tensor(data[self.mask_key]).float().cpu().reshape(1, *data[self.mask_key].shape[-2:])
                mask = Resize(size, mode="nearest")(mask, lazy=False).as_tensor()
            pred = original * (1 - mask) + pred * mask
        return MetaTensor(pred.unsqueeze(-1) if source["ndim"] == 4 else pred, affine=source["affine"])
