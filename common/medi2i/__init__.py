"""medi2i: shared library of the MONAI bundle collection for diffusion-based medical image-to-image translation.

Subpackages: ``data`` (readers, slices, phantoms), ``diffusion`` (DDIM encode/decode and guidance),
``engines`` (Ignite training pieces MONAI lacks), ``metrics``, ``viz`` and ``workflows`` (inference and
evaluation runners that bundle configs call).
"""

from . import data, diffusion, engines, metrics, networks, viz, workflows
from .errors import InputError

__version__ = "0.1.0"
__all__ = ["InputError", "data", "diffusion", "engines", "metrics", "networks", "viz", "workflows", "__version__"]
