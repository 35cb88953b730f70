"""The canvas of unconditional-input generation for callers that hand over one image (MONAI Label).

A generation inferer ignores its input's content: the input only fixes the output's shape. :class:`PrepareCanvasd`
turns ``{"image": <path of a 2D NIfTI or PNG>}`` into the ``(1, S, S)`` tensor the network was trained on (the
image resized, channels averaged) and keeps the file's in-plane size and affine; :class:`RestoreCanvasd` resizes
the generated ``pred`` back to that size and gives it the file's affine, so that the written image lies on the
input's grid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, Resize

from ..errors import require
from .brats import _load
from .images2d import _volume_slice
from .restore2d import RestoreFromSource


@dataclass
class Canvas:
    """What :class:`RestoreCanvasd` needs: the input's spatial shape after the channel axis, and its affine."""

    spatial_shape: tuple[int, ...]
    affine: torch.Tensor


class PrepareCanvasd(MapTransform):
    """``{"image": path}`` -> ``(1, image_size, image_size)`` float32; the input's grid under ``<key>_canvas``.

    Accepts a 2D slice: NIfTI ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 1, C)``, or a PNG with any channels; of a volume
    ``(H, W, D)`` the axial slice ``slice_index`` (``"middle"`` or an index), with that slice's affine.
    """

    def __init__(self, keys="image", image_size: int = 160, slice_index: int | str = "middle"):
        super().__init__(keys)
        self.image_size, self.slice_index = int(image_size), slice_index

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            path = str(d[key])
            require(os.path.isfile(path), path, "image file not found")
            image = _load(path, path)
            if image.ndim == 4 and image.shape[-1] > 1:  # a volume: its middle slice, at that slice's position
                image = _volume_slice(image, self.slice_index, path)[0]
            plane = [int(s) for s in image.shape[1:3]]
            require(image.ndim >= 3 and all(s == 1 for s in image.shape[3:]) and min(plane) > 1, path,
                    f"expected a 2D slice, got spatial shape {tuple(image.shape[1:])}")
            d[f"{key}_canvas"] = Canvas(tuple(image.shape[1:]), torch.as_tensor(image.affine, dtype=torch.float64))
            flat = image.as_tensor().float().mean(0, keepdim=True).reshape(1, *plane)
            d[key] = Resize((self.image_size, self.image_size), mode="area")(flat, lazy=False).as_tensor()
        return d


class RestoreCanvasd(RestoreFromSource):
    """``pred`` ``(C, S, S)`` -> a MetaTensor of the input's spatial shape with the input's affine."""

    def __init__(self, keys="pred", source: str = "image"):
        super().__init__(keys, f"{source}_canvas")

    def restore(self, pred, canvas: Canvas, data):
        resized = Resize(canvas.spatial_shape[:2], mode="bilinear", anti_aliasing=True)(pred, lazy=False).as_tensor()
        return MetaTensor(resized.reshape(pred.shape[0], *canvas.spatial_shape), affine=canvas.affine.clone())
