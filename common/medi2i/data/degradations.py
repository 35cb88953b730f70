"""Degradations that make the condition image y from a clean image x (Med-cDiff, Sec. 4.1), as MONAI transforms.

* :class:`DownUpSampled`: downsample by a factor f, then upsample back to the original size (super-resolution).
* :class:`GaussianSaltPepperNoised`: additive Gaussian noise plus salt-and-pepper noise (denoising).
* :class:`InpaintingMaskd`: a random box or free-form stroke mask; the condition is the masked image and the mask.

Images are ``(C, H, W)`` in [-1, 1]. Each transform is random during training (MONAI ``Randomizable``, seeded by
``set_determinism``) and, with ``fixed_seed`` set, draws the same degradation for the same image file every time
(test sets: "masks fixed among different tests"), whatever the order or the batch the image comes in.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, Randomizable

from ..errors import require


def downsampled_size(size: int, factor: float) -> int:
    """Side length after downsampling ``size`` by ``factor`` (at least 1 pixel)."""
    return max(1, int(round(size / float(factor))))


def down_up_sample(image: torch.Tensor, factor: float, down_mode: str = "area", up_mode: str = "bicubic") -> torch.Tensor:
    """``(C, H, W)`` -> downsampled by ``factor`` (``down_mode``) -> back to ``(C, H, W)`` (``up_mode``)."""
    size = image.shape[-2:]
    low = F.interpolate(image[None].float(), size=[downsampled_size(s, factor) for s in size], mode=down_mode,
                        **({} if down_mode in ("area", "nearest") else {"align_corners": False, "antialias": True}))
    return upsample(low[0], size, up_mode)


def upsample(low: torch.Tensor, size, mode: str = "bicubic") -> torch.Tensor:
    """Interpolate a ``(C, h, w)`` image to ``size`` (bicubic or bilinear overshoot is clipped to [-1, 1])."""
    kwargs = {} if mode in ("area", "nearest") else {"align_corners": False}
    return F.interpolate(low[None].float(), size=tuple(size), mode=mode, **kwargs)[0].clamp(-1, 1)


class _SeededDegradation(Randomizable, MapTransform):
    """Common part: reads ``keys[0]``, writes the degraded image to ``condition_key`` (the clean one stays, or is
    copied to ``target_key`` when given). ``fixed_seed`` ties the draw to the image's file name (not its folder, so a copy of the data draws the same)."""

    def __init__(self, keys="image", condition_key: str = "condition", target_key: str | None = None,
                 fixed_seed: int | None = None):
        MapTransform.__init__(self, keys)
        self.condition_key, self.target_key, self.fixed_seed = condition_key, target_key, fixed_seed

    def _rng(self, image) -> np.random.RandomState:
        if self.fixed_seed is None:
            return self.R
        name = os.path.basename(str(getattr(image, "meta", {}).get("filename_or_obj", "")))
        return np.random.RandomState([int(self.fixed_seed) % 2**32, zlib.crc32(name.encode())])

    def degrade(self, image: torch.Tensor, rng: np.random.RandomState) -> torch.Tensor:
        raise NotImplementedError

    def randomize(self, data=None) -> None:  # draws happen in degrade() with the chosen generator
        pass

    def __call__(self, data):
        d = dict(data)
        key = self.keys[0]
        image = d[key]
        if self.target_key:
            d[self.target_key] = image
        d[self.condition_key] = self.degrade(torch.as_tensor(image).float(), self._rng(image))
        return d


class DownUpSampled(_SeededDegradation):
    """Super-resolution condition: downsample by ``factor`` (one of ``factors`` at random when several are given),
    then upsample back (paper: 2√2, 4, 4√2, 8, 8√2, 16 on 128×128)."""

    def __init__(self, keys="image", factor: float | list[float] = 4.0, down_mode: str = "area", up_mode: str = "bicubic",
                 **kwargs):
        super().__init__(keys, **kwargs)
        self.factors = [float(f) for f in (factor if isinstance(factor, (list, tuple)) else [factor])]
        require(all(f >= 1 for f in self.factors), "factor", f"downsampling factors must be >= 1, got {self.factors}")
        self.down_mode, self.up_mode = down_mode, up_mode

    def degrade(self, image, rng):
        factor = self.factors[rng.randint(len(self.factors))] if len(self.factors) > 1 else self.factors[0]
        return down_up_sample(image, factor, self.down_mode, self.up_mode)


class GaussianSaltPepperNoised(_SeededDegradation):
    """Denoising condition: ``x + N(0, gaussian_std^2)`` clipped to [-1, 1], then a fraction ``salt_pepper`` of
    the pixels set to -1 (pepper) or +1 (salt) with equal probability. A ``[lo, hi]`` pair draws the level."""

    def __init__(self, keys="image", gaussian_std: float | list[float] = 0.1, salt_pepper: float | list[float] = 0.05,
                 **kwargs):
        super().__init__(keys, **kwargs)
        self.gaussian_std, self.salt_pepper = gaussian_std, salt_pepper

    @staticmethod
    def _level(value, rng) -> float:
        return float(rng.uniform(*value)) if isinstance(value, (list, tuple)) else float(value)

    def degrade(self, image, rng):
        std, fraction = self._level(self.gaussian_std, rng), self._level(self.salt_pepper, rng)
        noisy = image + torch.from_numpy(rng.standard_normal(image.shape).astype(np.float32)) * std
        hit = torch.from_numpy(rng.random_sample(image.shape[-2:]) < fraction)
        salt = torch.from_numpy(rng.random_sample(image.shape[-2:]) < 0.5)
        return torch.where(hit, torch.where(salt, 1.0, -1.0), noisy.clamp(-1, 1))


def box_mask(shape, area: float, rng: np.random.RandomState) -> np.ndarray:
    """A rectangle covering ``area`` of the image (aspect ratio in [0.5, 2]) at a random position."""
    h, w = shape
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    bh = int(np.clip(round(np.sqrt(area * h * w * aspect)), 1, h))
    bw = int(np.clip(round(area * h * w / bh), 1, w))
    top, left = rng.randint(0, h - bh + 1), rng.randint(0, w - bw + 1)
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + bh, left : left + bw] = True
    return mask


def stroke_mask(shape, area: float, rng: np.random.RandomState, width: float = 0.06) -> np.ndarray:
    """Free-form strokes (random walks of a round brush, ``width`` x the image side) until ``area`` is covered."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    radius = max(1.0, width * min(h, w) / 2)
    mask = np.zeros(shape, dtype=bool)
    target = area * h * w
    y, x, angle = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, 2 * np.pi)
    for _ in range(10_000):
        if mask.sum() >= target:
            break
        angle += rng.uniform(-0.8, 0.8)
        y = float(np.clip(y + np.sin(angle) * radius, 0, h - 1))
        x = float(np.clip(x + np.cos(angle) * radius, 0, w - 1))
        mask |= (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
        if rng.random_sample() < 0.05:  # start a new stroke
            y, x = rng.uniform(0, h), rng.uniform(0, w)
    return mask


class InpaintingMaskd(_SeededDegradation):
    """Inpainting condition ``[x * (1 - m), m]`` (the masked single-channel image, then the mask) with a mask ``m`` covering ``area`` of the image (a ``[lo, hi]`` pair draws it), a box or free-form strokes
    (``shapes``). A mask already in the data under ``mask_key`` (e.g. drawn by a user) is used as given."""

    def __init__(self, keys="image", area: float | list[float] = (0.05, 0.25), shapes=("box", "stroke"),
                 mask_key: str = "mask", **kwargs):
        super().__init__(keys, **kwargs)
        self.area, self.shapes, self.mask_key = area, list(shapes), mask_key
        require(set(self.shapes) <= {"box", "stroke"} and self.shapes, "shapes", f"mask shapes must be 'box' and/or 'stroke', got {shapes}")

    def make_mask(self, shape, rng) -> torch.Tensor:
        area = float(rng.uniform(*self.area)) if isinstance(self.area, (list, tuple)) else float(self.area)
        require(0 < area < 1, "area", f"mask area must be in (0, 1), got {area}")
        kind = self.shapes[rng.randint(len(self.shapes))]
        return torch.from_numpy((box_mask if kind == "box" else stroke_mask)(tuple(shape), area, rng))

    def __call__(self, data):
        d = dict(data)
        image = torch.as_tensor(d[self.keys[0]]).float()
        if self.target_key:
            d[self.target_key] = d[self.keys[0]]
        if d.get(self.mask_key) is not None:
            mask = torch.as_tensor(d[self.mask_key]).float()
            mask = mask.reshape(mask.shape[-3:])[:1] if mask.ndim >= 3 else mask[None]
            require(tuple(mask.shape[-2:]) == tuple(image.shape[-2:]), self.mask_key,
                    f"mask is {tuple(mask.shape[-2:])}, image is {tuple(image.shape[-2:])}")
            mask = (mask > 0.5).float()
        else:
            mask = self.make_mask(image.shape[-2:], self._rng(d[self.keys[0]])).float()[None]
        d[self.condition_key] = torch.cat([image * (1 - mask), mask])
        d[self.mask_key] = mask
        return d
