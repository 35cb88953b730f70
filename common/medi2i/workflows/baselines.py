"""Classical restorations a user would otherwise reach for, compared with Med-cDiff in ``evaluate.json``.

A baseline is called as ``baseline(condition, target) -> (B, 1, H, W)`` on ``(B, C, H, W)`` tensors in [-1, 1]:

* super-resolution: :class:`Interpolation` (bicubic, bilinear) of the low-resolution image (made again from the
  target with the bundle's factor: the degradation is deterministic);
* denoising: :class:`NoisyInput` (the condition itself) and :class:`MedianFilter`;
* inpainting: :class:`BiharmonicFill` (smooth fill solving the biharmonic equation in the hole, like
  scikit-image's ``inpaint_biharmonic``) and :class:`NearestFill` (value of the nearest known pixel).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.ndimage import distance_transform_edt, median_filter
from scipy.sparse.linalg import spsolve

from ..data.degradations import down_up_sample


def _per_image(func, images: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.ascontiguousarray(func(img.cpu().numpy()))).float() for img in images]).to(images.device)


class Interpolation:
    """Downsample the target by ``factor`` (as the degradation does) and interpolate back with ``mode``."""

    def __init__(self, factor: float, mode: str = "bicubic", down_mode: str = "area"):
        self.factor, self.mode, self.down_mode = float(factor), mode, down_mode

    def __call__(self, condition: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.stack([down_up_sample(t, self.factor, self.down_mode, self.mode) for t in target])


class NoisyInput:
    """The degraded image itself (the paper's "noisy image" row)."""

    def __call__(self, condition: torch.Tensor, target=None) -> torch.Tensor:
        return condition[:, :1].float()


class MedianFilter:
    """``size`` x ``size`` median filter of the condition (removes salt-and-pepper noise)."""

    def __init__(self, size: int = 3):
        self.size = int(size)

    def __call__(self, condition: torch.Tensor, target=None) -> torch.Tensor:
        return _per_image(lambda im: median_filter(im, size=(1, self.size, self.size), mode="reflect"), condition[:, :1])


def _laplacian(h: int, w: int) -> sp.csr_matrix:
    """Graph Laplacian of the 4-connected ``h`` x ``w`` grid (Neumann boundary)."""
    def path(n):
        d = np.ones(n)
        d[1:-1] = 2
        return sp.diags([d, -np.ones(n - 1), -np.ones(n - 1)], [0, -1, 1]) if n > 1 else sp.csr_matrix((1, 1))
    return (sp.kron(sp.identity(h), path(w)) + sp.kron(path(h), sp.identity(w))).tocsr()


def biharmonic_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill ``mask`` pixels of a 2D ``image`` with the solution of the biharmonic equation given the rest."""
    h, w = image.shape
    unknown = mask.reshape(-1).astype(bool)
    if not unknown.any():
        return image.copy()
    lap = _laplacian(h, w)
    bi = (lap @ lap).tocsr()
    known = ~unknown
    values = image.reshape(-1).astype(np.float64)
    rhs = -bi[unknown][:, known] @ values[known]
    out = values.copy()
    out[unknown] = spsolve(bi[unknown][:, unknown].tocsc(), rhs)
    return out.reshape(h, w)


class BiharmonicFill:
    """Biharmonic inpainting of the condition's mask (channel 1) in its masked image (channel 0)."""

    def __call__(self, condition: torch.Tensor, target=None) -> torch.Tensor:
        return _per_image(lambda c: biharmonic_fill(c[0], c[1] > 0.5)[None].clip(-1, 1), condition)


class NearestFill:
    """Each masked pixel takes the value of the nearest known pixel."""

    def __call__(self, condition: torch.Tensor, target=None) -> torch.Tensor:
        def fill(c):
            _, (iy, ix) = distance_transform_edt(c[1] > 0.5, return_indices=True)
            return c[0][iy, ix][None]
        return _per_image(fill, condition)
