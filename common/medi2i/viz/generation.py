"""Pictures of generated samples: a grid (rows = contrasts, columns = samples) and the denoising trajectory as a PNG
strip and an animated GIF, like the contrast-generation paper's sampling animation."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from .panels import _2d, _save, plt


def sample_grid(path: str, rows: dict[str, torch.Tensor], title: str = "") -> str:
    """``rows`` = contrast name -> ``(N, 1, H, W)`` samples; one row per contrast, one column per sample."""
    names = list(rows)
    ncols = max(int(v.shape[0]) for v in rows.values())
    fig, axes = plt.subplots(len(names), ncols, figsize=(1.6 * ncols, 1.7 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        for c in range(ncols):
            ax = axes[r, c]
            if c < rows[name].shape[0]:
                ax.imshow(_2d(rows[name][c, 0]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _frame_image(images: list[torch.Tensor]) -> np.ndarray:
    """Images ``(H, W)`` side by side as one uint8 array (values clipped to [0, 1])."""
    row = np.concatenate([np.clip(_2d(im), 0, 1) for im in images], axis=1)
    return (row * 255).round().astype(np.uint8)


def trajectory_strip(path: str, frames: dict[str, list[tuple[int, torch.Tensor]]]) -> str:
    """``frames`` = contrast -> ``[(t, x_t (1, H, W))]``; one row per contrast, x_t left (noisy) to right (clean)."""
    names = list(frames)
    ncols = len(frames[names[0]])
    fig, axes = plt.subplots(len(names), ncols, figsize=(1.4 * ncols, 1.5 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        for c, (t, x) in enumerate(frames[name]):
            axes[r, c].imshow(_2d(x[0]), cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(f"t={t}", fontsize=8)
        axes[r, 0].set_ylabel(name, fontsize=9)
    return _save(fig, path)


def trajectory_gif(path: str, frames: dict[str, list[tuple[int, torch.Tensor]]], duration_ms: int = 120) -> str:
    """Animated GIF of the sampling: each frame shows every contrast's x_t side by side."""
    names = list(frames)
    pictures = [Image.fromarray(_frame_image([frames[n][k][1][0] for n in names]))
                for k in range(len(frames[names[0]]))]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".part.gif"
    pictures[0].save(tmp, save_all=True, append_images=pictures[1:] + [pictures[-1]] * 5, duration=duration_ms, loop=0)
    os.replace(tmp, path)
    return path
