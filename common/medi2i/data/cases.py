"""From what a user points at (a case folder, a dataset folder, a datalist, a 2D file) to network-ready slices."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_tensor

from ..errors import require
from .brats import EXTENSIONS, brain_mask, find_cases, load_case
from .datalist import load_section, read_json
from .restore2d import RestoreFromSource
from .slices import ScaleBrainIntensity, SliceGrid, as_slab, axial_slice, largest_tumour_slice


def resolve_cases(inputs: str | list[str], section: str = "test_cases") -> list[dict]:
    """Cases from paths: a datalist JSON (its ``section``), a case or dataset folder, or single image files."""
    paths = [inputs] if isinstance(inputs, str) else list(inputs)
    require(len(paths) > 0, "inputs", "no input given")
    cases: list[dict] = []
    for path in paths:
        path = str(path)
        require(os.path.exists(path), path, "no such file or folder")
        if path.endswith(".json"):
            content = read_json(path, "datalist")
            cases += load_section(path, section if isinstance(content, dict) and section in content else "test")
        elif os.path.isdir(path):
            cases += find_cases(path)
        else:
            stem = os.path.basename(path)
            for ext in EXTENSIONS:
                stem = stem[: -len(ext)] if stem.endswith(ext) else stem
            cases.append({"case": stem, "image": path})
    seen: dict[str, int] = {}
    for case in cases:  # one output folder per case: make names unique
        name = str(case.get("case") or "case")
        if "slice" in case:
            name = f"{name}_z{int(case['slice']):03d}"
        seen[name] = seen.get(name, 0) + 1
        case["name"] = name if seen[name] == 1 else f"{name}_{seen[name]}"
    return cases


@dataclass
class PreparedSlice:
    """A case's slice scaled to [0, 1]: ``original`` ``(4, H, W, 1)`` as read (and ``original_label``, the whole
    tumour as 0/1), and on the network grid ``image`` ``(4, S, S, 1)`` with ``label``/``brain`` ``(1, S, S, 1)``
    (:class:`~medi2i.data.slices.SliceGrid`)."""

    name: str
    image: MetaTensor
    label: torch.Tensor | None
    brain: torch.Tensor
    slice_index: int | None
    grid: SliceGrid
    original: MetaTensor
    original_label: MetaTensor | None = None

    def restore(self, data: torch.Tensor) -> MetaTensor:
        """A network-grid array ``(C, S, S, 1)`` on the input grid: original in-plane size and affine."""
        return self.grid.restore(data)

    def restore_edit(self, output: torch.Tensor) -> MetaTensor:
        """A translated slice ``(4, S, S, 1)`` on the input grid as the input plus the upsampled change
        ``output - image``: where the network left the image alone the input's own detail stays (identical to
        :meth:`restore` when the grid is only padded)."""
        change = self.grid.restore(torch.as_tensor(output).detach().cpu() - self.image.as_tensor())
        return MetaTensor(self.original.as_tensor() + change.as_tensor(), meta=change.meta)


def prepare_slice(case: dict, image_size: int, slice_index: int | str = "largest_tumour",
                  percentile: float = 99.5) -> PreparedSlice:
    """Load a case and return its 2D slice ready for the network.

    Volumes are scaled on brain tissue as a whole, then sliced at ``case["slice"]``, ``slice_index`` (an int),
    ``"largest_tumour"`` (needs a label; else the slice with most brain) or ``"middle"``. 2D inputs are scaled
    per slice unless already in [0, 1]. Slices larger than ``image_size`` are padded and downsampled
    (:class:`~medi2i.data.slices.SliceGrid`).
    """
    image, seg = load_case(case)
    where = case.get("name", case["image"])
    index = None
    if image.ndim == 4 and image.shape[-1] > 1:
        image = ScaleBrainIntensity(percentile)(image)
        index = case.get("slice", slice_index)
        if index == "largest_tumour":
            index = largest_tumour_slice(image, seg)
        elif index == "middle":
            index = image.shape[-1] // 2
        require(isinstance(index, int) and 0 <= index < image.shape[-1], where,
                f"slice index {index} outside the volume's {image.shape[-1]} axial slices")
        image, seg = axial_slice(image, index), None if seg is None else axial_slice(seg, index)
    else:
        image, seg = as_slab(image), None if seg is None else as_slab(seg)
        if image.max() > 1.0:
            image = ScaleBrainIntensity(percentile)(image)
    require(image.min() >= 0, where, "has negative intensities; expected MR magnitudes (or values scaled to [0, 1])")
    require(bool(brain_mask(image).any()), where, f"slice {index if index is not None else ''} has no brain (FLAIR is zero everywhere)".replace("  ", " "))
    grid = SliceGrid(image, image_size)
    fitted = grid.fit(image)
    label = None if seg is None else grid.fit(seg, mask=True).as_tensor() > 0
    whole = None if seg is None else MetaTensor((convert_to_tensor(seg, track_meta=False) > 0).float(), affine=image.affine)  # whole tumour, as read
    return PreparedSlice(case["name"] if "name" in case else str(where), fitted, label, brain_mask(fitted.as_tensor()),
                         index, grid, image, whole)


class PrepareSliced(MapTransform):
    """``{"image": <path of a case folder, volume or 2D slice file>}`` -> the network-ready slice ``(C, S, S)``.

    The preprocessing of ``inference.json`` for callers that hand over one image (MONAI Label's
    ``BundleInferTask``). What :class:`RestoreSliced` needs to undo the padding is kept under ``<key>_prepared``.
    """

    def __init__(self, keys="image", image_size: int = 256, slice_index: int | str = "largest_tumour"):
        super().__init__(keys)
        self.image_size, self.slice_index = int(image_size), slice_index

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            path = str(d[key])
            case = {"image": path, "name": os.path.basename(path)}
            if os.path.isdir(path):  # a whole case folder (BraTS <case>_{t1,t1ce,t2,flair}.nii.gz)
                found = resolve_cases(path)
                require(len(found) == 1, path, f"expected one case folder, found {len(found)} cases")
                case = {**found[0], "name": os.path.basename(os.path.normpath(path))}
            prepared = prepare_slice(case, self.image_size, self.slice_index)
            d[f"{key}_prepared"], d[key] = prepared, prepared.image[..., 0]
        return d


class RestoreSliced(RestoreFromSource):
    """Undo :class:`PrepareSliced` on ``pred`` ``(C, S, S)``: the input's in-plane size and affine, ``(C, H, W, 1)``."""

    def __init__(self, keys="pred", source: str = "image"):
        super().__init__(keys, f"{source}_prepared")

    def restore(self, pred, prepared: PreparedSlice, data):
        return prepared.restore_edit(pred.unsqueeze(-1))
