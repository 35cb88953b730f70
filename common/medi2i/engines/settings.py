"""Checks of a training config's settings, run first in every ``train*.json`` ``initialize`` so that a bad value is
one ``error: <setting>: <rule>`` line (exit status 2) before any data is read or network built."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from ..errors import check_file, exit_on_input_error, require


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@exit_on_input_error
def check_training(max_epochs, batch_size, learning_rate, val_interval=1, epoch_length=1, log_interval=1,
                   datalist: str | None = None, dataset_dir: str | None = None,
                   image_size: int | Sequence[int] | None = None, size_multiple: int = 1, size_setting: str = "image_size",
                   other_rates: dict | None = None) -> None:
    """Raise a one-line error for counts that are not whole numbers >= 1, learning rates (``learning_rate`` and
    ``other_rates``) that are not finite and > 0, an ``image_size`` (one size or one per axis, named ``size_setting``)
    that is not a positive multiple of ``size_multiple`` (what the networks' downsampling needs, e.g.
    ``2 ** (len(channels) - 1)`` for a MONAI UNet), or a missing ``datalist`` file or ``dataset_dir`` folder."""
    counts = {"max_epochs": max_epochs, "batch_size": batch_size, "val_interval": val_interval,
              "epoch_length": epoch_length, "log_interval": log_interval}
    for name, value in counts.items():
        require(_whole(value) and value >= 1, name, f"must be a whole number >= 1, got {value!r}")
    for name, value in {"learning_rate": learning_rate, **(other_rates or {})}.items():
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        require(ok, name, f"must be a finite number > 0, got {value!r}")
    if image_size is not None:
        sizes = list(image_size) if isinstance(image_size, Sequence) else [image_size]
        ok = all(_whole(s) and s >= size_multiple and s % size_multiple == 0 for s in sizes)
        require(ok, size_setting, f"must be a positive multiple of {size_multiple} (the networks downsample it by "
                                  f"{size_multiple}), got {image_size!r}")
    if datalist is not None:
        check_file(datalist, "datalist")
    if dataset_dir is not None:
        require(os.path.isdir(str(dataset_dir)), dataset_dir, "dataset folder not found")
