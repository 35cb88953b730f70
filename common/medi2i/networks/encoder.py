"""MONAI's ``DiffusionModelEncoder`` with the pooling heads of guided-diffusion's noisy classifiers.

MONAI's encoder flattens its last feature map into an MLP, so its output (and the gradient that guides sampling)
is tied to where features are. The authors' guidance networks (guided-diffusion ``EncoderUNetModel``, run with
``--classifier_pool attention`` in their anomaly-detection code, whose regressor the Swiss Army Knife reuses) pool
over space first: GroupNorm, SiLU, then

* ``pool="attention"``: attention pooling, the spatial mean as the query over all positions plus a learned
  positional embedding (the authors' setting);
* ``pool="adaptive"``: global average pooling and a linear layer;
* ``pool="flatten"``: MONAI's own head, unchanged.

``input_norm=True`` standardises each input channel per sample (instance normalisation without affine terms)
before the first convolution, so the output cannot depend on a channel's global level or scale, only on its
spatial pattern (not in the papers; see the growth bundle's docs).
"""

from __future__ import annotations

import math

import torch
from monai.networks.nets.diffusion_model_unet import DiffusionModelEncoder
from torch import nn


class AttentionPool(nn.Module):
    """Multi-head attention of the spatial mean over every position (with a learned positional embedding);
    ``(B, C, *spatial) -> (B, out_channels)``."""

    def __init__(self, num_positions: int, channels: int, num_head_channels: int, out_channels: int):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(num_positions + 1, channels) / channels**0.5)
        self.attention = nn.MultiheadAttention(channels, max(1, channels // num_head_channels), batch_first=True)
        self.proj = nn.Linear(channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        tokens = torch.cat([tokens.mean(1, keepdim=True), tokens], 1) + self.positional_embedding.to(x.dtype)
        pooled, _ = self.attention(tokens[:, :1], tokens, tokens, need_weights=False)
        return self.proj(pooled[:, 0])


class PooledDiffusionModelEncoder(DiffusionModelEncoder):
    """``DiffusionModelEncoder(...)`` plus ``pool`` ("attention", "adaptive" or "flatten"); ``net(x, timesteps)``.

    ``pool_head_channels`` is the attention pool's channels per head (guided-diffusion: 64).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, input_shape=(64, 64),
                 pool: str = "attention", pool_head_channels: int = 64, input_norm: bool = False, **kwargs):
        super().__init__(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                         input_shape=input_shape, **kwargs)
        self.input_norm = bool(input_norm)
        if pool == "flatten":
            return
        if pool not in ("attention", "adaptive"):
            raise ValueError(f"pool must be 'attention', 'adaptive' or 'flatten', got {pool!r}")
        channels = self.block_out_channels[-1]
        final_shape = [int(s) for s in input_shape]
        for _ in self.block_out_channels:
            final_shape = [math.ceil(s / 2) for s in final_shape]
        if pool == "attention":
            head = AttentionPool(math.prod(final_shape), channels, pool_head_channels, out_channels)
        else:
            head = nn.Sequential(nn.AdaptiveAvgPool2d(1) if spatial_dims == 2 else nn.AdaptiveAvgPool3d(1),
                                 nn.Flatten(), nn.Linear(channels, out_channels))
        # MONAI's forward flattens the features before ``self.out``: unflatten, normalise, pool
        self.out = nn.Sequential(nn.Unflatten(1, (channels, *final_shape)),
                                 nn.GroupNorm(kwargs.get("norm_num_groups", 32), channels, eps=kwargs.get("norm_eps", 1e-6)),
                                 nn.SiLU(), head)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context=None, class_labels=None) -> torch.Tensor:
        if self.input_norm:
            x = nn.functional.instance_norm(x)
        return super().forward(x, timesteps, context, class_labels)
