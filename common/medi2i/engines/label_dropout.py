"""Label dropout for classifier-free guidance: during training the class label is replaced by the null class with
probability ``drop_prob`` (0.1 in Conditional Diffusion MNIST and the contrast-generation paper), so that one network
learns both ``eps(x_t, c)`` and ``eps(x_t, null)``."""

from __future__ import annotations

import torch
from monai.engines import DiffusionPrepareBatch


def drop_labels(labels: torch.Tensor, drop_prob: float, null_class: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each label replaced by ``null_class`` independently with probability ``drop_prob``."""
    drop = torch.rand(labels.shape, generator=generator, device=labels.device) < float(drop_prob)
    return torch.where(drop, torch.full_like(labels, int(null_class)), labels)


class LabelDropoutPrepareBatch(DiffusionPrepareBatch):
    """MONAI's ``DiffusionPrepareBatch`` (noise target, random timesteps) whose keyword arguments also carry
    ``class_labels`` taken from ``batch[label_key]``, dropped to ``null_class`` with probability ``drop_prob``
    (use ``drop_prob=0`` for validation). Pair it with :class:`~medi2i.diffusion.ClassConditionalDiffusionInferer`."""

    def __init__(self, num_train_timesteps: int, null_class: int, drop_prob: float = 0.1, label_key: str = "label"):
        super().__init__(num_train_timesteps)
        if not 0.0 <= float(drop_prob) <= 1.0:
            raise ValueError(f"drop_prob must be in [0, 1], got {drop_prob}")
        self.null_class, self.drop_prob, self.label_key = int(null_class), float(drop_prob), label_key

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        images, target, args, infer_kwargs = super().__call__(batchdata, device, non_blocking, **kwargs)
        labels = torch.as_tensor(batchdata[self.label_key]).long().reshape(-1).to(images.device)
        infer_kwargs["class_labels"] = drop_labels(labels, self.drop_prob, self.null_class) if self.drop_prob else labels
        return images, target, args, infer_kwargs
