"""Networks MONAI lacks (small, documented); everything else is MONAI's."""

from .encoder import PooledDiffusionModelEncoder
from .ms_spade import MSSPADE, MSSPADENetwork

__all__ = ["PooledDiffusionModelEncoder", "MSSPADE", "MSSPADENetwork"]
