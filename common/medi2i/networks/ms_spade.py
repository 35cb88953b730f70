"""MS-SPADE: multiple switchable spatially adaptive normalisation (ALDM, Kim & Park, WACV 2024, Eq. 1, Fig. 2a).

The network maps source latents ``z_src`` of the autoencoder to *target-like* latents ``z_src^tar`` of a chosen
target modality (supplementary Table B)::

    In:          C7 -> InstanceNorm -> ReLU                          (latent -> 128 channels)
    ResBlock x2: C3 -> ReLU -> IN -> C3 -> ReLU -> IN   (+ skip)      (256, 256)
    SPADEBlock x4: C3 -> ReLU -> MS-SPADE -> C3 -> ReLU -> MS-SPADE (+ skip)   (256, 256, 256, 128)
    Out:         C7                                                   (128 -> latent channels)

Each MS-SPADE layer normalises its input ``h`` per channel and modulates it with spatially varying
``gamma^tar(h)`` and ``beta^tar(h)`` (Eq. 1). It holds **one gamma/beta generator per target modality** and
switches between them per sample by the target label, so one network serves every target and a batch may mix
targets. Normalisation is parameter-free instance normalisation: the statistics of one sample never depend on
the other samples of a batch (the paper trains with batch 1, where batch and instance statistics coincide).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _conv(spatial_dims: int, cin: int, cout: int, kernel: int) -> nn.Module:
    conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
    return conv(cin, cout, kernel, padding=kernel // 2)


def _instance_norm(spatial_dims: int, channels: int, affine: bool) -> nn.Module:
    return (nn.InstanceNorm3d if spatial_dims == 3 else nn.InstanceNorm2d)(channels, affine=affine)


def target_index(target: torch.Tensor | int | Sequence[int], batch: int, num_targets: int, device) -> torch.Tensor:
    """Per-sample target indices ``(B,)`` from an int, a list, indices ``(B,)`` or one-hot vectors ``(B, M)``."""
    t = torch.as_tensor(target, device=device)
    if t.ndim == 2:
        t = t.argmax(1)
    t = t.long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ValueError(f"got {t.numel()} target labels for a batch of {batch}")
    if bool((t < 0).any()) or bool((t >= num_targets).any()):
        raise ValueError(f"target labels must be in 0..{num_targets - 1}, got {t.tolist()}")
    return t


class MSSPADE(nn.Module):
    """One MS-SPADE layer (Eq. 1): ``x = gamma^tar(h) * (h - mu_c) / sigma_c + beta^tar(h)``.

    Args:
        spatial_dims: 2 or 3.
        channels: channels of ``h``.
        num_targets: number of target modalities (one generator each).
        hidden_channels: channels of each generator's shared convolution (SPADE's ``nhidden``).
        kernel_size: kernel of the generator convolutions.
    """

    def __init__(self, spatial_dims: int, channels: int, num_targets: int, hidden_channels: int = 128, kernel_size: int = 3):
        super().__init__()
        self.num_targets = int(num_targets)
        self.norm = _instance_norm(spatial_dims, channels, affine=False)
        self.shared = nn.ModuleList(nn.Sequential(_conv(spatial_dims, channels, hidden_channels, kernel_size), nn.ReLU())
                                    for _ in range(num_targets))
        self.gamma = nn.ModuleList(_conv(spatial_dims, hidden_channels, channels, kernel_size) for _ in range(num_targets))
        self.beta = nn.ModuleList(_conv(spatial_dims, hidden_channels, channels, kernel_size) for _ in range(num_targets))

    def modulation(self, h: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gamma, beta)`` of each sample from its own target's generator (only the targets present are run)."""
        gamma, beta = torch.empty_like(h), torch.empty_like(h)
        for m in target.unique().tolist():
            rows = target == m
            actv = self.shared[m](h[rows])
            gamma[rows], beta[rows] = self.gamma[m](actv), self.beta[m](actv)
        return gamma, beta

    def forward(self, h: torch.Tensor, target) -> torch.Tensor:
        target = target_index(target, h.shape[0], self.num_targets, h.device)
        gamma, beta = self.modulation(h, target)
        return gamma * self.norm(h) + beta


class ResBlock(nn.Module):
    """``C3 -> ReLU -> IN -> C3 -> ReLU -> IN`` plus a (1x1-projected) skip connection."""

    def __init__(self, spatial_dims: int, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(_conv(spatial_dims, cin, cout, 3), nn.ReLU(), _instance_norm(spatial_dims, cout, True),
                                  _conv(spatial_dims, cout, cout, 3), nn.ReLU(), _instance_norm(spatial_dims, cout, True))
        self.skip = nn.Identity() if cin == cout else _conv(spatial_dims, cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class SPADEBlock(nn.Module):
    """``C3 -> ReLU -> MS-SPADE -> C3 -> ReLU -> MS-SPADE`` plus a (1x1-projected) skip connection."""

    def __init__(self, spatial_dims: int, cin: int, cout: int, num_targets: int, hidden_channels: int):
        super().__init__()
        self.conv1, self.conv2 = _conv(spatial_dims, cin, cout, 3), _conv(spatial_dims, cout, cout, 3)
        self.norm1 = MSSPADE(spatial_dims, cout, num_targets, hidden_channels)
        self.norm2 = MSSPADE(spatial_dims, cout, num_targets, hidden_channels)
        self.skip = nn.Identity() if cin == cout else _conv(spatial_dims, cin, cout, 1)

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        h = self.norm1(torch.relu(self.conv1(x)), target)
        h = self.norm2(torch.relu(self.conv2(h)), target)
        return self.skip(x) + h


class MSSPADENetwork(nn.Module):
    """Source latents -> target-like latents, switched per sample by ``target`` (supplementary Table B).

    ``net(z_src, target)`` with ``target`` an int, indices ``(B,)`` or one-hot ``(B, M)``.

    Args:
        spatial_dims: 3 for volumes (2 also works).
        latent_channels: channels of the autoencoder's latents (paper: 3).
        num_targets: number of target modalities M (BraTS: 4).
        in_channels: channels after the input convolution (paper: 128).
        res_channels: output channels of the residual blocks (paper: 256, 256).
        spade_channels: output channels of the SPADE blocks (paper: 256, 256, 256, 128).
        hidden_channels: channels of the gamma/beta generators (SPADE's default 128).
        io_kernel: kernel of the input and output convolutions (paper: 7).
    """

    def __init__(self, spatial_dims: int = 3, latent_channels: int = 3, num_targets: int = 4, in_channels: int = 128,
                 res_channels: Sequence[int] = (256, 256), spade_channels: Sequence[int] = (256, 256, 256, 128),
                 hidden_channels: int = 128, io_kernel: int = 7):
        super().__init__()
        self.num_targets = int(num_targets)
        self.head = nn.Sequential(_conv(spatial_dims, latent_channels, in_channels, io_kernel),
                                  _instance_norm(spatial_dims, in_channels, True), nn.ReLU())
        chans = [in_channels, *res_channels]
        self.res_blocks = nn.Sequential(*(ResBlock(spatial_dims, a, b) for a, b in zip(chans[:-1], chans[1:])))
        chans = [chans[-1], *spade_channels]
        self.spade_blocks = nn.ModuleList(SPADEBlock(spatial_dims, a, b, num_targets, hidden_channels)
                                          for a, b in zip(chans[:-1], chans[1:]))
        self.out = _conv(spatial_dims, chans[-1], latent_channels, io_kernel)

    def forward(self, z: torch.Tensor, target) -> torch.Tensor:
        target = target_index(target, z.shape[0], self.num_targets, z.device)
        h = self.res_blocks(self.head(z))
        for block in self.spade_blocks:
            h = block(h, target)
        return self.out(h)
