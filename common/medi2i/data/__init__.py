"""Readers for real dataset layouts, slice extraction, synthetic phantoms and datalists."""

from .brats import MODALITIES, brain_mask, case_from_folder, find_cases, load_case
from .cases import PrepareSliced, RestoreSliced
from .datalist import build_slice_datalist, load_section
from .masks import DesiredMask, blob_mask, load_mask
from .ixi import IXI_CONTRASTS, find_ixi_subjects
from .selection import healthy_slices
from .phantoms import make_phantom, write_phantom_dataset
from .slices import ScaleBrainIntensity, ScaleBrainIntensityd, axial_slice, iter_slices, relative_tumour_size

__all__ = [
    "MODALITIES", "brain_mask", "case_from_folder", "find_cases", "load_case", "build_slice_datalist", "load_section",
    "IXI_CONTRASTS", "find_ixi_subjects", "make_phantom", "write_phantom_dataset", "ScaleBrainIntensity", "ScaleBrainIntensityd", "axial_slice",
    "iter_slices", "relative_tumour_size", "DesiredMask", "blob_mask", "load_mask", "healthy_slices", "PrepareSliced", "RestoreSliced",
]
from .degradations import DownUpSampled, GaussianSaltPepperNoised, InpaintingMaskd  # noqa: E402
from .images2d import Normalised, build_image_datalist, find_radiographs, find_volumes, load_image  # noqa: E402
from .phantoms2d import make_chest_phantom, make_pelvis_phantom, phantom_datalist  # noqa: E402

__all__ += ["DownUpSampled", "GaussianSaltPepperNoised", "InpaintingMaskd", "Normalised", "build_image_datalist",
            "find_radiographs", "find_volumes", "load_image", "make_chest_phantom", "make_pelvis_phantom", "phantom_datalist"]
from .restore2d import Restored  # noqa: E402

__all__ += ["Restored"]
from . import multimodal  # noqa: E402  (paired multi-modal volumes)

from .canvas import PrepareCanvasd, RestoreCanvasd  # noqa: E402

__all__ += ["PrepareCanvasd", "RestoreCanvasd"]
