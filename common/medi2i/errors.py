"""One-line user errors.

Bad input (a missing modality, a wrong shape, a missing checkpoint...) raises :class:`InputError`, whose message
names the file and the problem on one line. Entry points wrap their work in :func:`exit_on_input_error` so
that a user sees that line on stderr and a non-zero exit status instead of a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


class InputError(ValueError):
    """Bad user input; the message is one line naming the file (or setting) and the problem."""

    def __init__(self, where: Any, problem: str):
        self.where, self.problem = str(where), problem
        super().__init__(f"{where}: {problem}")


def exit_on_input_error(func: Callable) -> Callable:
    """Decorate an entry point: an :class:`InputError` becomes ``error: <message>`` on stderr and exit status 2.

    Set ``MEDI2I_RAISE=1`` to get the exception itself (tests and debugging).
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InputError as err:
            if os.environ.get("MEDI2I_RAISE") == "1":
                raise
            print(f"error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    return wrapper


def require(condition: bool, where: Any, problem: str) -> None:
    """Raise :class:`InputError` unless ``condition`` holds."""
    if not condition:
        raise InputError(where, problem)


def check_finite(array: np.ndarray | torch.Tensor, where: Any) -> None:
    """Reject NaN or infinite voxels."""
    bad = (~torch.isfinite(array)).sum().item() if isinstance(array, torch.Tensor) else (~np.isfinite(array)).sum()
    require(bad == 0, where, f"contains {int(bad)} non-finite voxel(s) (NaN or Inf)")


def check_file(path: Any, what: str = "file") -> str:
    """Return ``path`` as a string if it is an existing file, else raise a one-line error."""
    require(path is not None and os.path.isfile(str(path)), path, f"{what} not found")
    return str(path)


def apply_unwrapped(transform: Callable, data: Any, where: Any = None) -> Any:
    """``transform(data)``; an :class:`InputError` that MONAI's "applying transform" wrapper chains (``__cause__``)
    is raised as itself. Any other failure is re-raised, or with ``where`` becomes the one line
    ``<where>: cannot be read or prepared (<last line of the root error>)``."""
    try:
        return transform(data)
    except Exception as err:  # noqa: BLE001 - MONAI wraps every transform error in a RuntimeError
        root = err
        while root.__cause__ is not None and not isinstance(root, InputError):
            root = root.__cause__
        if isinstance(root, InputError):
            raise root from None
        if where is None:
            raise
        msg = ([ln for ln in str(root).splitlines() if ln.strip()] or [type(root).__name__])[-1]
        raise InputError(where, f"cannot be read or prepared ({msg.strip()[:200]})") from None
