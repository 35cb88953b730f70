"""PNG panels laid out like the papers' figures (matplotlib, no screen needed)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _2d(x) -> np.ndarray:
    """A (H, W) array shown with the first voxel axis horizontal and the second vertical, as radiology viewers do
    for BraTS' LPS-style axial slices."""
    arr = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)
    return np.rot90(arr.squeeze())


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".part.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def translation_panel(path: str, source: torch.Tensor, outputs: list[tuple[str, torch.Tensor]],
                      channel_names=("t1", "t1ce", "t2", "flair"), notes: dict[str, str] | None = None,
                      overlay: torch.Tensor | None = None, overlay_channel: int = 3) -> str:
    """One row per image (source framed in red, then each output): its channels and |output - source| summed
    over channels (Swiss Army Knife Figs. 5-7). ``overlay`` (H, W) is drawn in red over ``overlay_channel`` of
    the source in an extra column (Fig. 8)."""
    notes = notes or {}
    rows = [("input", source)] + list(outputs)
    ncols = len(channel_names) + 1 + (overlay is not None)
    diff_max = max([float((o - source).abs().sum(0).max()) for _, o in outputs] + [1e-6])
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.1 * ncols, 2.2 * len(rows)), squeeze=False)
    for r, (title, image) in enumerate(rows):
        for c, name in enumerate(channel_names):
            axes[r, c].imshow(_2d(image[c]), cmap="gray", vmin=0, vmax=1)
            if r == 0:
                axes[r, c].set_title(name)
        diff = (image - source).abs().sum(0)
        axes[r, len(channel_names)].imshow(_2d(diff), cmap="inferno", vmin=0, vmax=diff_max)
        if r == 0:
            axes[r, len(channel_names)].set_title("|output - input|")
        if overlay is not None and r == 0:
            axes[r, -1].imshow(_2d(source[overlay_channel]), cmap="gray", vmin=0, vmax=1)
            axes[r, -1].imshow(np.ma.masked_where(_2d(overlay) < 0.5, _2d(overlay)), cmap="autumn", alpha=0.6)
            axes[r, -1].set_title("mask")
        label = "\n".join([title, *notes.get(title, "").split(", ")]).strip()  # one score per line, read horizontally
        axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center", labelpad=6)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.axis("off")
    for c in range(len(channel_names)):
        for spine in axes[0, c].spines.values():
            spine.set_edgecolor("red")
            spine.set_linewidth(2)
    return _save(fig, path)


def requested_vs_achieved(path: str, requested, series: dict[str, tuple[list, list]], xlabel: str, ylabel: str) -> str:
    """Scatter of achieved against requested values (one marker style per series) with the identity line."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    lo, hi = float(np.min(requested)), float(np.max(requested))
    for name, (x, y) in series.items():
        ax.scatter(x, y, label=name, alpha=0.7)
        hi = max(hi, float(np.max(y)) if len(y) else hi)
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="identity")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def comparison_panel(path: str, rows: list[tuple[str, list[tuple[str, torch.Tensor]]]], notes: dict | None = None,
                     value_range=(-1.0, 1.0)) -> str:
    """Grid of single-channel images, one row per case and one column per method (Med-cDiff Figs. 2, 4, 5): the
    input, the baselines, Med-cDiff and the ground truth. Images are ``(1, H, W)`` indexed (x, y) as MONAI reads
    them (shown transposed). ``notes[(row, column)]`` is printed under an image (e.g. its PSNR)."""
    notes = notes or {}
    ncols = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.0 * ncols, 2.1 * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c, (title, image) in enumerate(images):
            arr = image.detach().cpu().float().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
            axes[r, c].imshow(arr.squeeze().T, cmap="gray", vmin=value_range[0], vmax=value_range[1])
            axes[r, c].set_title(title if r == 0 else "", fontsize=8)
            if (name, title) in notes:
                axes[r, c].set_xlabel(notes[(name, title)], fontsize=7)
        axes[r, 0].set_ylabel(name, fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.axis("off")
    return _save(fig, path)
