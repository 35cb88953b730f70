"""The desired label mask z of tumour inpainting (Swiss Army Knife, Sec. 2.2): from a file or a drawn blob.

A mask file is a 2D NIfTI or PNG of the slice's in-plane size (non-zero = tumour). A blob is a disc of
``radius`` pixels around ``centre`` = (row, column) in the slice's pixel indices (first, second voxel axis);
without a centre it sits at the brain's centroid. Every mask is checked (one-line errors naming the file or
setting): same shape as the slice, not empty, and mostly inside the brain; pixels outside the brain are dropped.
"""

from __future__ import annotations

import torch
from ..errors import InputError, check_file, require
from .brats import _load, brain_mask
from .images2d import _single_2d
from .slices import SliceGrid


def blob_mask(shape, centre, radius: float) -> torch.Tensor:
    """A ``(1, H, W)`` boolean disc of ``radius`` pixels around ``centre`` (row, column)."""
    rows, cols = torch.meshgrid(torch.arange(shape[0]), torch.arange(shape[1]), indexing="ij")
    return (((rows - float(centre[0])) ** 2 + (cols - float(centre[1])) ** 2) <= float(radius) ** 2)[None]


def load_mask(path: str) -> torch.Tensor:
    """A 2D mask file as a ``(1, H, W)`` boolean tensor (NIfTI ``(H, W)`` or ``(H, W, 1)``, grey or RGB(A) PNG; an
    alpha channel is ignored, as for images)."""
    check_file(path, "mask file")
    return _single_2d(_load(path, path), path).as_tensor() != 0


class DesiredMask:
    """Builds z for a slice from ``mask_file`` or a blob (``centre``, ``radius``).

    Args:
        mask_file: 2D mask file (wins over the blob).
        centre: blob centre (row, column) in the slice's pixels; None = the brain's centroid.
        radius: blob radius in pixels.
        min_brain_fraction: smallest share of the mask's pixels that must lie inside the brain.
    """

    def __init__(self, mask_file: str | None = None, centre=None, radius: float = 10.0, min_brain_fraction: float = 0.5):
        self.mask_file = mask_file or None
        self.centre = None if centre is None else [float(c) for c in centre]
        self.radius, self.min_brain_fraction = float(radius), float(min_brain_fraction)

    @property
    def where(self) -> str:
        return self.mask_file or f"mask blob (centre {self.centre}, radius {self.radius:g})"

    def for_brain(self, brain: torch.Tensor, fit_file: bool = False) -> torch.Tensor:
        """z ``(1, H, W)`` float for a slice whose brain mask is ``brain`` ``(1, H, W)``.

        ``fit_file``: ``brain`` is on the network grid and a mask file of another size is brought onto it as its
        slice was (:class:`~medi2i.data.slices.SliceGrid`) instead of refused.
        """
        brain = brain.bool().cpu()
        shape = tuple(brain.shape[1:])
        if self.mask_file:
            mask = load_mask(self.mask_file)
            if fit_file and tuple(mask.shape[1:]) != shape and shape[0] == shape[1]:
                mask = SliceGrid(mask[..., None], shape[0]).fit(mask[..., None], mask=True).as_tensor()[..., 0] > 0
            require(tuple(mask.shape[1:]) == shape, self.mask_file,
                    f"mask shape {tuple(mask.shape[1:])} differs from the image slice {shape}")
        else:
            require(self.radius > 0, "mask radius", f"must be > 0, got {self.radius:g}")
            centre = self.centre
            if centre is None:
                centre = [float(idx.float().mean()) for idx in torch.nonzero(brain[0], as_tuple=True)]
            mask = blob_mask(shape, centre, self.radius)
        pixels = int(mask.sum())
        require(pixels > 0, self.where, "mask is empty (no non-zero pixel inside the image)")
        inside = int((mask & brain).sum())
        require(inside >= self.min_brain_fraction * pixels, self.where,
                f"mask lies outside the brain ({inside} of its {pixels} pixels are brain, "
                f"{self.min_brain_fraction:.0%} required)")
        return (mask & brain).float()

    def for_prepared(self, prepared) -> dict[str, torch.Tensor]:
        """``{"mask": z}`` for a :class:`~medi2i.data.cases.PreparedSlice`: drawn or read on the input grid, then
        brought to the network grid like its image (the ``case_inputs`` of :class:`~medi2i.workflows.GuidedTranslation`)."""
        brain = brain_mask(prepared.original)[..., 0]
        try:
            z = self.for_brain(brain)
        except InputError as err:
            raise InputError(err.where, f"{err.problem} (case {prepared.name})") from None
        return {"mask": prepared.grid.fit(z.unsqueeze(-1), mask=True).as_tensor()[..., 0] * prepared.brain[..., 0]}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """z ``(B, 1, S, S)`` for network-ready images ``(B, 4, S, S)`` (brain = non-zero FLAIR)."""
        return torch.stack([self.for_brain(brain_mask(x), fit_file=True) for x in images]).to(images.device)

