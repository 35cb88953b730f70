"""Axial and sagittal views of 3D volumes side by side (ALDM Figs. 4 and 6)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .panels import _2d, _save


def volume_views_panel(path: str, volumes: list[tuple[str, torch.Tensor]]) -> str:
    """One column per ``(title, volume (H, W, D))``; the top row the middle axial slice, the bottom row the middle
    sagittal slice, grey values on [0, 1]."""
    fig, axes = plt.subplots(2, len(volumes), figsize=(2.1 * len(volumes), 4.4), squeeze=False)
    for c, (title, volume) in enumerate(volumes):
        v = volume.detach().cpu().float().reshape(volume.shape[-3:])
        axes[0, c].imshow(_2d(v[:, :, v.shape[2] // 2]), cmap="gray", vmin=0, vmax=1)
        axes[1, c].imshow(_2d(v[v.shape[0] // 2, :, :]), cmap="gray", vmin=0, vmax=1)
        axes[0, c].set_title(title, fontsize=9)
    axes[0, 0].set_ylabel("axial")
    axes[1, 0].set_ylabel("sagittal")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)
