"""Guidance by a noisy segmenter (Swiss Army Knife, Algorithm 2) or a noisy classifier (Wolleb et al. 2022).

* :class:`SegmentationGuidance`: ``H = -(1/P) sum_j [z_j log S_j + (1 - z_j) log(1 - S_j)]`` (the mean binary
  cross-entropy between ``S(x_t, t)`` and the desired mask ``z``) and ``g = -c * grad_x H``. Algorithm 2 prints
  ``eps_hat = eps - c sqrt(1 - abar_t) grad H``, which would *raise* the cross-entropy (move away from ``z``);
  as in Algorithm 1 and classifier guidance, the image is moved along the gradient of the log-likelihood
  ``-H``, so the guided decoding lowers ``H`` (see the bundle's "Deviations from the paper").
* :class:`ClassifierGuidance`: ``g = s * grad_x log p(y | x_t)`` towards the class ``y`` (healthy = 0).

Networks output logits, are frozen, and gradients are taken with respect to x_t only. A guidance can load its
network's weights itself on first use (``checkpoint``, :class:`~medi2i.diffusion.guidance._NetworkGuidance`), so a
bundle's inferer works on its own (MONAI Label).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .guidance import _NetworkGuidance, _per_sample


def mean_bce(logits: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """H = -(1/P) sum_j [z_j log S_j + (1 - z_j) log(1 - S_j)] per sample, S = sigmoid(logits) (stable form)."""
    z = z.to(logits).expand_as(logits)
    return F.binary_cross_entropy_with_logits(logits, z, reduction="none").flatten(1).mean(1)


def class_log_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """log p(y | x) of (B, K) logits; one logit l means the binary classes (0, 1) with logits (0, l)."""
    if logits.shape[1] == 1:
        logits = torch.cat([torch.zeros_like(logits), logits], 1)
    return logits.log_softmax(1)


class SegmentationGuidance(_NetworkGuidance):
    """Algorithm 2: ``g = -c * grad_x H(S(x_t, t), z)`` with H the mean binary cross-entropy over the P pixels.

    Args:
        segmenter: S(x, timesteps=t) -> (B, 1, H, W) logits (sigmoid gives S).
        gradient_scale: the constant c (5 in the paper, Sec. 4.3).
        mask: default desired mask z, (1, H, W) or (B, 1, H, W); a ``mask`` given at call time wins.
        checkpoint: weights loaded on first use.
        amp, channels_last, compile: speed settings (see :class:`~medi2i.diffusion.guidance._NetworkGuidance`).
    """

    what = "segmenter checkpoint"

    def __init__(self, segmenter: nn.Module, gradient_scale: float = 5.0, mask: torch.Tensor | None = None,
                 checkpoint: str | None = None, amp: bool = False, channels_last: bool = False, compile: bool | dict = False):
        super().__init__(segmenter, checkpoint, amp, channels_last, compile)
        self.gradient_scale, self.mask = float(gradient_scale), mask

    def cross_entropy(self, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """H(S(x_t, t), z) per sample, (B,)."""
        return mean_bce(self.logits(x, t), mask)

    def prepare(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
        """The desired mask z (call-time or default) as float on ``x``'s device, once before the sampling loop."""
        self.load()
        mask = self.mask if mask is None else mask
        if mask is None:
            raise ValueError("SegmentationGuidance needs a desired mask z")
        return {"mask": torch.as_tensor(mask).to(device=x.device, dtype=torch.float32)}

    def __call__(self, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        z = self.prepare(x, mask)["mask"]  # no copy when prepared
        grad = self._gradient(x, t, lambda logits: mean_bce(logits, z))
        return -self.gradient_scale * grad


class ClassifierGuidance(_NetworkGuidance):
    """Classifier guidance (Dhariwal & Nichol 2021; Wolleb et al. 2022): ``g = s * grad_x log p(y | x_t)``.

    Args:
        classifier: C(x, timesteps=t) -> (B, K) logits; one logit is read as binary ``logit p(y=1)``.
        gradient_scale: s.
        target_class: default y (0 = healthy); ``target_class`` given at call time (per sample) wins.
        checkpoint: weights loaded on first use.
        amp, channels_last, compile: speed settings (see :class:`~medi2i.diffusion.guidance._NetworkGuidance`).
    """

    what = "classifier checkpoint"

    def __init__(self, classifier: nn.Module, gradient_scale: float = 100.0, target_class: int = 0,
                 checkpoint: str | None = None, amp: bool = False, channels_last: bool = False, compile: bool | dict = False):
        super().__init__(classifier, checkpoint, amp, channels_last, compile)
        self.gradient_scale, self.target_class = float(gradient_scale), int(target_class)

    def prepare(self, x: torch.Tensor, target_class=None) -> dict:
        """Per-sample target classes as a long tensor on ``x``'s device, once before the sampling loop."""
        self.load()
        return {"target_class": _per_sample(self.target_class if target_class is None else target_class, x.shape[0], x,
                                            torch.long)}

    def __call__(self, x: torch.Tensor, t: torch.Tensor, target_class=None) -> torch.Tensor:
        y = self.prepare(x, target_class)["target_class"]  # no copy when prepared
        grad = self._gradient(x, t, lambda logits: class_log_probabilities(logits).gather(1, y[:, None])[:, 0])
        return self.gradient_scale * grad
