"""Loading bundle weights with one-line errors for a missing or mismatched checkpoint."""

from __future__ import annotations

import torch

from ..data.io import check_output_dir
from ..errors import InputError, check_file


def load_weights(network: torch.nn.Module, path: str, what: str = "checkpoint", map_location=None) -> torch.nn.Module:
    """Load a state dict (plain, or ``{"model"|"network": state}``) into ``network`` strictly."""
    check_file(path, what)
    try:
        state = torch.load(path, map_location=map_location or "cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise InputError(path, f"{what} cannot be read ({type(err).__name__})") from err
    if isinstance(state, dict) and not any(torch.is_tensor(v) for v in state.values()):
        state = state.get("model", state.get("network", state))
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = "; ".join(lines[1:3])[:300]
        raise InputError(path, f"{what} does not match the configured network ({detail})") from None
    return network


def load_torchscript(path: str, what: str, map_location=None) -> torch.nn.Module:
    """A local TorchScript network in eval mode (one-line error when it is missing or not TorchScript)."""
    check_file(path, what)
    try:
        return torch.jit.load(path, map_location=map_location or "cpu").eval()
    except Exception as err:  # noqa: BLE001 - text, truncated or pickled files fail in several ways
        raise InputError(path, f"{what} cannot be read ({type(err).__name__})") from None


def refuse_existing_and_load(output_dir: str, names, overwrite: bool, checkpoints, device=None) -> None:
    """Before a run writes anything: check ``output_dir`` (:func:`~medi2i.data.io.check_output_dir`: writable,
    refused when not empty unless ``overwrite``; the run replaces its ``names`` and ``summary.csv``, or with
    ``names=None`` the whole folder), then load every ``(module, path, what)`` checkpoint strictly."""
    check_output_dir(output_dir, overwrite, None if names is None else [*names, "summary.csv"])
    for module, path, what in checkpoints:
        load_weights(module, path, what, map_location=device)
