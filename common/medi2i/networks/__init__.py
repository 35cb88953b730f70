"""Networks MONAI lacks (small, documented), and strict weight loading with one-line errors."""

from .checkpoints import load_weights
from .encoder import PooledDiffusionModelEncoder
from .ms_spade import MSSPADE, MSSPADENetwork

__all__ = ["PooledDiffusionModelEncoder", "load_weights", "MSSPADE", "MSSPADENetwork"]
