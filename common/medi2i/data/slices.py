"""Axial slices as in the Swiss Army Knife paper: 4 channels (t1, t1ce, t2, flair) scaled to [0, 1] on brain
tissue, zero-padded to a square size (240 -> 256 for BraTS), slices without brain dropped, and the relative
tumour size (tumour pixels / brain pixels) as the regression label.

A network smaller than the slice (the demo's 64x64 for 240x240 BraTS) gets the padded slice area-downsampled by
an integer factor (240 -> 256 -> 64): :class:`SliceGrid` does both and brings network outputs back to the input grid.

Slices are kept as ``(C, H, W, 1)`` MetaTensors so that each one carries the 3D affine of its position in the
volume; networks see ``(C, H, W)``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, Resize, SpatialCrop, SpatialPad, Transform

from ..errors import require
from .brats import brain_mask


class ScaleBrainIntensity(Transform):
    """Scale each channel to [0, 1] on brain tissue: divide by the ``percentile`` of its brain voxels and clip.

    Background (zero) stays zero. MONAI's percentile scaling has no mask, and on skull-stripped data the
    background dominates every percentile, hence this transform.
    """

    def __init__(self, percentile: float = 99.5):
        self.percentile = percentile

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        out = image.clone().float()
        for c in range(image.shape[0]):
            brain = image[c][image[c] > 0]
            if brain.numel():
                hi = torch.quantile(brain.float()[:: max(1, brain.numel() // 2_000_000)], self.percentile / 100.0)
                out[c] = (image[c] / hi.clamp_min(1e-8)).clamp(0.0, 1.0)
        return out


class ScaleBrainIntensityd(MapTransform):
    """Dictionary version of :class:`ScaleBrainIntensity`."""

    def __init__(self, keys, percentile: float = 99.5, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.scaler = ScaleBrainIntensity(percentile)

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.scaler(d[key])
        return d


def relative_tumour_size(seg: torch.Tensor | None, image: torch.Tensor) -> float:
    """Tumour pixels / brain pixels of a slice (whole tumour = label > 0; brain = non-zero FLAIR)."""
    brain = brain_mask(image).sum().item()
    if seg is None or brain == 0:
        return 0.0
    return float(((seg > 0) & brain_mask(image)).sum().item() / brain)


def axial_slice(volume: torch.Tensor, index: int) -> torch.Tensor:
    """Slice ``index`` of a ``(C, H, W, D)`` volume as ``(C, H, W, 1)``, affine moved to that slice."""
    return SpatialCrop(roi_start=(0, 0, index), roi_end=(volume.shape[1], volume.shape[2], index + 1))(volume)


def as_slab(image: torch.Tensor) -> torch.Tensor:
    """A 2D image ``(C, H, W)`` as a one-slice volume ``(C, H, W, 1)`` (3D images are returned unchanged)."""
    if image.ndim == 4:
        return image
    slab = image.unsqueeze(-1)
    if isinstance(slab, MetaTensor):
        affine = torch.eye(4, dtype=torch.float64)
        aff2 = slab.affine
        affine[:2, :2], affine[:2, 3] = aff2[:2, :2], aff2[:2, 2]
        slab.affine = affine
    return slab


def brain_slice_indices(volume: torch.Tensor, min_brain_pixels: int = 1, slice_range: Sequence[int] | None = None) -> list[int]:
    """Axial indices whose slice holds at least ``min_brain_pixels`` brain pixels (within ``slice_range``)."""
    counts = brain_mask(volume)[0].sum(dim=(0, 1))
    lo, hi = (0, volume.shape[-1]) if slice_range is None else (max(0, slice_range[0]), min(volume.shape[-1], slice_range[1]))
    return [int(k) for k in range(lo, hi) if counts[k] >= min_brain_pixels]


def largest_tumour_slice(volume: torch.Tensor, seg: torch.Tensor | None) -> int:
    """The axial slice with the largest tumour, or the slice with most brain when there is no label."""
    if seg is not None and (seg > 0).any():
        return int((seg[0] > 0).sum(dim=(0, 1)).argmax())
    return int(brain_mask(volume)[0].sum(dim=(0, 1)).argmax())


class SliceGrid:
    """The network grid of a ``(C, H, W, 1)`` slab: zero-padded (symmetric, as the paper's 240 -> 256) to the
    smallest square ``n * image_size`` holding it, then area-downsampled by ``n`` (``n = 1``: padding only).

    :meth:`fit` brings an image (or a mask, thresholded after averaging) onto the network grid, keeping the affine
    of the new pixel spacing; :meth:`restore` brings a network-grid array back to the input's in-plane size and
    affine (bilinear upsampling, then the padding cropped).
    """

    def __init__(self, image: torch.Tensor, image_size: int):
        side = max(int(image.shape[1]), int(image.shape[2]))
        self.image_size, self.factor = int(image_size), -(-side // int(image_size))
        self.padder = SpatialPad(spatial_size=(self.factor * self.image_size,) * 2 + (-1,), mode="constant")
        self.padded = self.padder(image if isinstance(image, MetaTensor) else MetaTensor(image))

    def fit(self, image: torch.Tensor, mask: bool = False) -> MetaTensor:
        """``image`` (on the input grid) -> the network grid. ``mask=True``: non-zero pixels as 0/1, and after
        downsampling a pixel is 1 where more than half of it was."""
        if mask:
            image = MetaTensor((torch.as_tensor(image) != 0).float(), meta=getattr(image, "meta", None))
        fitted = self.padder(image)
        if self.factor > 1:
            fitted = Resize((self.image_size, self.image_size, -1), mode="area")(fitted, lazy=False)
            if mask:
                fitted = MetaTensor((fitted.as_tensor() > 0.5).float(), meta=fitted.meta)
        return fitted

    def restore(self, data: torch.Tensor) -> MetaTensor:
        """A network-grid array ``(C, S, S, 1)`` -> ``(C, H, W, 1)`` on the input grid with the input's affine."""
        data = torch.as_tensor(data).detach().float().cpu()
        if self.factor > 1:
            size = self.padded.shape[1:3]
            data = Resize((*size, -1), mode="bilinear")(data, lazy=False)
            data = data.as_tensor() if isinstance(data, MetaTensor) else data
        out = MetaTensor(data, meta=copy.deepcopy(self.padded.meta), applied_operations=copy.deepcopy(self.padded.applied_operations))
        return self.padder.inverse(out)


def to_network_grid(image: torch.Tensor, image_size: int, mask: bool = False) -> torch.Tensor:
    """A ``(C, H, W)`` slice on its input grid (as the workflows write it) on the network grid ``(C, S, S)``, as
    inference saw it: the evaluations run guidance networks there."""
    slab = image[..., None]
    return SliceGrid(slab, image_size).fit(slab, mask).as_tensor()[..., 0]


def iter_slices(volume: torch.Tensor, seg: torch.Tensor | None, image_size: int, min_brain_pixels: int = 1,
                slice_range: Sequence[int] | None = None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None, float]]:
    """Yield ``(index, image, seg, relative_tumour_size)`` for every brain slice on the network grid of
    ``image_size`` (:class:`SliceGrid`); the size is measured on the slice as read.

    ``volume`` must already be intensity-scaled (:class:`ScaleBrainIntensity`).
    """
    for k in brain_slice_indices(volume, min_brain_pixels, slice_range):
        image = axial_slice(volume, k)
        label = None if seg is None else axial_slice(seg, k)
        grid = SliceGrid(image, image_size)  # label values are kept when only padded, else the whole tumour as 0/1
        label_out = None if label is None else grid.fit(label, mask=grid.factor > 1)
        yield k, grid.fit(image), label_out, relative_tumour_size(label, image)
