"""Networks MONAI lacks (small, documented); everything else is MONAI's."""

from .encoder import PooledDiffusionModelEncoder

__all__ = ["PooledDiffusionModelEncoder"]
