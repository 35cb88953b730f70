"""Classical restorations a user would otherwise reach for, compared with Med-cDiff in ``evaluate.json``.

A baseline is called as ``baseline(condition, target) -> (B, 1, H, W)`` on ``(B, C, H, W)`` tensors in [-1, 1]:

* super-resolution: :class:`Interpolation` (bicubic, bilinear) of the low-resolution image (made again from the
  target with the bundle's factor: the degradation is deterministic);
* denoising: :class:`NoisyInput` (the condition itself), :class:`MedianFilter` and :class:`NonLocalMeans`
  (scikit-image ``denoise_nl_means`` with the noise level estimated per image);
* inpainting: :class:`BiharmonicFill` (scikit-image ``inpaint_biharmonic``: smooth fill solving the biharmonic
  equation in the hole) and :class:`NearestFill` (value of the nearest known pixel).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt, median_filter
from skimage.restoration import denoise_nl_means, estimate_sigma, inpaint_biharmonic

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


class NonLocalMeans:
    """Non-local means (Buades et al. 2005) of the condition: ``patch_size`` x ``patch_size`` patches compared within
    ``patch_distance`` pixels, filtering strength ``h`` = ``strength`` x the noise level estimated on the image."""

    def __init__(self, patch_size: int = 5, patch_distance: int = 6, strength: float = 0.8):
        self.patch_size, self.patch_distance, self.strength = int(patch_size), int(patch_distance), float(strength)

    def _denoise(self, image: np.ndarray) -> np.ndarray:
        sigma = float(estimate_sigma(image))
        return denoise_nl_means(image, patch_size=self.patch_size, patch_distance=self.patch_distance,
                                h=self.strength * sigma, sigma=sigma, fast_mode=True).clip(-1, 1)

    def __call__(self, condition: torch.Tensor, target=None) -> torch.Tensor:
        return _per_image(lambda im: self._denoise(im[0].astype(np.float64))[None], condition[:, :1])


class BiharmonicFill:
    """Biharmonic inpainting of the condition's mask (channel 1) in its masked image (channel 0)."""

    def __call__(self, condition: torch.Tensor, target=None) -> torch.Tensor:
        return _per_image(lambda c: inpaint_biharmonic(c[0], c[1] > 0.5)[None].clip(-1, 1), condition)


class NearestFill:
    """Each masked pixel takes the value of the nearest known pixel."""

    def __call__(self, condition: torch.Tensor, target=None) -> torch.Tensor:
        def fill(c):
            _, (iy, ix) = distance_transform_edt(c[1] > 0.5, return_indices=True)
            return c[0][iy, ix][None]
        return _per_image(fill, condition)
