"""Metrics on images and translations."""

from .image import masked_psnr, masked_ssim
from .tumour import SegmentedTumourSize, TumourSize, dilate

__all__ = ["masked_psnr", "masked_ssim", "SegmentedTumourSize", "TumourSize", "dilate"]
from . import restoration  # noqa: E402

__all__ += ["restoration"]

from .intensity import frechet_distance, histogram_distance, tissue_histogram  # noqa: E402

__all__ += ["frechet_distance", "histogram_distance", "tissue_histogram"]
