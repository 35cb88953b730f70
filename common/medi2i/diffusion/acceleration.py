"""Speed settings shared by the samplers and guidances: bf16 weights cast once, ``channels_last``, TF32 and
``torch.compile``, all behind flags (the bundles' ``amp``, ``channels_last``, ``tf32``, ``compile``).

:func:`accelerated` returns what a sampling loop calls in place of a network; it is built once per loop (not per
step) and cached until the network's weights change, so loading a checkpoint later is still seen.
"""

from __future__ import annotations

import contextlib
import copy
import weakref

import torch
from torch import nn

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def set_tf32(enabled: bool = True) -> None:
    """TF32 for CUDA matmuls and cuDNN convolutions (float32 storage, 10-bit mantissa products; no effect on CPU)."""
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    torch.backends.cudnn.allow_tf32 = bool(enabled)


def autocast(amp: bool, x: torch.Tensor):
    """On CUDA a bf16 autocast region, on when ``amp`` (off also inside an enclosing one); on the CPU nothing (fp32)."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(amp)) if x.is_cuda else contextlib.nullcontext()


def bf16_weights(network: nn.Module) -> nn.Module:
    """A copy of ``network`` whose convolution and linear weights are bf16 (cast once, not in every autocast call);
    normalisation layers keep float32 parameters (autocast runs them in float32)."""
    network = copy.deepcopy(network)
    for module in network.modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            module.to(torch.bfloat16)
    return network


def _weights_key(network: nn.Module) -> tuple:
    """Changes when a parameter is replaced or written in place (e.g. a checkpoint loaded)."""
    return tuple((id(p), p._version, p.device) for p in network.parameters())


def accelerated(network: nn.Module, like: torch.Tensor, amp: bool = False, channels_last: bool = False,
                compile: bool | dict = False) -> nn.Module:
    """``network`` as the sampling loop should call it for inputs like ``like``: bf16 weights when ``amp`` on CUDA,
    ``channels_last`` (applied to ``network`` itself: same values and state dict), ``torch.compile`` when
    ``compile`` (``True``: mode "reduce-overhead", i.e. CUDA graphs, on CUDA and "default" on the CPU; a dict
    gives ``torch.compile``'s keyword arguments). The network itself is returned when nothing is on."""
    amp = bool(amp) and like.is_cuda
    if channels_last and like.ndim == 4:
        weight = next((p for p in network.parameters() if p.ndim == 4), None)
        if weight is not None and not weight.is_contiguous(memory_format=torch.channels_last):
            network.to(memory_format=torch.channels_last)
    if not amp and not compile:
        return network
    settings = (amp, repr(compile), like.device)
    cached = _CACHE.get(network)
    if cached is not None and cached[0] == settings and cached[1] == _weights_key(network):
        return cached[2]
    fast = bf16_weights(network) if amp else network
    if compile:
        options = dict(compile) if isinstance(compile, dict) else {"mode": "reduce-overhead" if like.is_cuda else "default"}
        fast = torch.compile(fast, **options)
    _CACHE[network] = (settings, _weights_key(network), fast)
    return fast


def memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``x`` in channels-last layout when asked (4D only; a no-op when it already is)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x
