"""Batch preparation for Ignite/MONAI trainers that MONAI does not ship.

* :class:`HybridPrepareBatch`: MONAI's ``DiffusionPrepareBatch`` whose target also carries the clean images and
  timesteps, for :class:`~medi2i.engines.losses.HybridDiffusionLoss`.
* :class:`NoisyImagePrepareBatch`: guidance networks (regressor, segmenter, classifier) are trained on
  ``x_t = add_noise(x_0, eps, t)`` with ``t`` uniform in [0, T) and get ``t`` as input (Swiss Army Knife, Sec. 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from monai.engines import DiffusionPrepareBatch, PrepareBatch, default_prepare_batch


class HybridPrepareBatch(DiffusionPrepareBatch):
    """Like ``DiffusionPrepareBatch`` (noisy input built by ``DiffusionInferer``), target
    ``{"noise", "images", "timesteps"}``."""

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        images, noise, args, infer_kwargs = super().__call__(batchdata, device, non_blocking, **kwargs)
        target = {"noise": noise, "images": images, "timesteps": infer_kwargs["timesteps"]}
        return images, target, args, infer_kwargs


class NoisyImagePrepareBatch(PrepareBatch):
    """Returns ``(x_t, label, (), {"timesteps": t})``; the network is called as ``net(x_t, timesteps=t)``.

    Args:
        scheduler: MONAI scheduler whose ``add_noise`` makes x_t.
        label_keys: batch key(s) of the target; several keys are stacked as channels, a scalar per sample
            becomes shape (B, 1).
        image_key: batch key of the clean image.
        max_timestep: sample t in [0, max_timestep) (default T).
    """

    def __init__(self, scheduler, label_keys: str | Sequence[str] = "label", image_key: str = "image",
                 max_timestep: int | None = None):
        self.scheduler = scheduler
        self.label_keys = [label_keys] if isinstance(label_keys, str) else list(label_keys)
        self.image_key = image_key
        self.max_timestep = int(max_timestep or scheduler.num_train_timesteps)

    def __call__(self, batchdata: Mapping, device=None, non_blocking: bool = False, **kwargs):
        images = default_prepare_batch({"image": batchdata[self.image_key]}, device, non_blocking, **kwargs)[0]
        labels = [torch.as_tensor(batchdata[k]) for k in self.label_keys]
        labels = [lab.float().reshape(images.shape[0], -1) if lab.ndim <= 1 else lab.float() for lab in labels]
        label = (torch.cat(labels, 1) if len(labels) > 1 else labels[0]).to(device, non_blocking=non_blocking)
        timesteps = torch.randint(0, self.max_timestep, (images.shape[0],), device=images.device).long()
        noisy = self.scheduler.add_noise(images, torch.randn_like(images), timesteps)
        return noisy, label, (), {"timesteps": timesteps}
