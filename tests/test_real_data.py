"""Issue 13: real images of any size through the data path, and the real-data demo weights on held-out cases.

Reads ``../shared/data`` (skipped with the reason when absent). Held out from every training run: the BraTS 2018
case ``brats2018/``, the BraTS 2023 case ``brats2023/`` and the radiographs of ``chest_xray_nih/``.
"""

import numpy as np
import torch

from conftest import shared
from medi2i.data.cases import prepare_slice, resolve_cases
from medi2i.data.slices import SliceGrid


def test_brats_slice_resampled_to_the_network_and_back():
    case = resolve_cases(shared("brats2018", "Brats18_TCIA01_201_1"))[0]
    prep = prepare_slice(case, 64)
    assert prep.original.shape == (4, 240, 240, 1) and prep.image.shape == (4, 64, 64, 1) and prep.grid.factor == 4
    # 240 -> 256 (paper padding) -> 64: four times the pixel spacing, same physical centre of the slab
    assert np.allclose(np.diag(prep.image.affine)[:2], 4 * np.diag(prep.original.affine)[:2])
    centre = lambda img: (img.affine @ torch.tensor([(img.shape[1] - 1) / 2, (img.shape[2] - 1) / 2, 0, 1], dtype=torch.float64))[:3]
    assert torch.allclose(centre(prep.image), centre(prep.original), atol=1e-6)
    # area averaging keeps the mean intensity of the padded slab
    assert abs(float(prep.image.mean()) * 64**2 - float(prep.original.mean()) * 240**2 / 16) < 1e-2 * 64**2
    # the tumour survives downsampling and the network-grid label follows it
    assert prep.label is not None and 100 < int(prep.label.sum()) < 64**2 // 4
    assert int((prep.label & ~prep.brain).sum()) == 0
    back = prep.restore(prep.image)
    assert back.shape == prep.original.shape and torch.allclose(back.affine, prep.original.affine)
    assert torch.equal(prep.restore_edit(prep.image).as_tensor(), prep.original.as_tensor())  # no change -> the input itself
    change = torch.zeros_like(prep.image.as_tensor())
    change[3, 30:34, 30:34] = 0.5
    edited = prep.restore_edit(prep.image.as_tensor() + change).as_tensor() - prep.original.as_tensor()
    assert float(edited[:3].abs().max()) == 0 and 0.4 < float(edited[3].max()) <= 0.5 + 1e-6  # only where it changed


def test_slice_grid_pads_only_when_the_network_is_large_enough():
    image = torch.rand(4, 240, 240, 1)
    grid = SliceGrid(image, 256)
    assert grid.factor == 1 and grid.fit(image).shape == (4, 256, 256, 1)
    assert torch.equal(grid.restore(grid.fit(image)).as_tensor(), image)


def test_empty_test_section_is_a_one_line_error(tmp_path):
    import json

    import pytest

    from medi2i.data import load_section
    from medi2i.errors import InputError

    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": [{"image": "a.nii.gz"}], "test": []}))
    with pytest.raises(InputError, match="section 'test' is empty"):  # MONAI's loader raised a bare IndexError
        load_section(str(path), "test")


def test_nifti_and_its_dicom_copy_are_one_case(tmp_path):
    import shutil

    import nibabel as nib

    from medi2i.data.images2d import find_volumes

    source = shared("prostatex", "ProstateX-0000")
    assert [c["case"] for c in find_volumes(source)] == ["ProstateX-0000_t2w_tra"]
    # a different NIfTI beside the same series (here: the values doubled) is another image: both are cases
    shutil.copytree(source, tmp_path / "case")
    nifti = tmp_path / "case" / "ProstateX-0000_t2w_tra.nii.gz"
    img = nib.load(str(nifti))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj) * 2.0, img.affine, img.header), str(nifti))
    assert len(find_volumes(str(tmp_path / "case"))) == 2


def test_aldm_preprocessing_fits_a_whole_brats_case_and_inverts_to_its_grid():
    """Demo ROI 64x64x48: the foreground box of a 240x240x155 case is shrunk to fit (not cut to its centre), and
    MONAI Invertd brings a network-size prediction back to the case's shape and affine."""
    import os

    from monai.bundle import ConfigParser

    from conftest import ROOT

    configs = os.path.join(ROOT, "bundles", "brats_mri_multimodal_translation_ldm3d", "configs")
    parser = ConfigParser()
    parser.read_config([os.path.join(configs, "inference.json"), os.path.join(configs, "demo.json")])
    case = shared("brats2018", "Brats18_TCIA01_201_1")
    paths = [os.path.join(case, f"Brats18_TCIA01_201_1_{m}.nii.gz") for m in ("t1", "t1ce", "t2", "flair")]
    data = parser.get_parsed_content("preprocessing")({"image": paths})
    image = data["image"]
    assert tuple(image.shape) == (4, 64, 64, 48)
    brain = (image[3] > 0).float()
    # the whole head fits: no brain voxel on the faces of the box except through the pad-to-size margins
    assert float(brain[0].sum() + brain[-1].sum() + brain[:, 0].sum() + brain[:, -1].sum()) == 0
    assert float(brain.sum()) > 0.2 * brain.numel()
    restored = parser.get_parsed_content("postprocessing")({**data, "pred": data["image"][:1].clone()})["pred"]
    import nibabel as nib

    reference = nib.load(paths[0])
    assert tuple(restored.shape[1:]) == reference.shape and np.allclose(restored.affine, reference.affine, atol=1e-4)


def test_real_recipes_hold_their_inputs_out_of_training():
    """No held-out input of a real recipe is (byte for byte) a file of its training source: five radiographs of
    chest_xray_nih/ are copies of chest_xray_nih_train/ files and must not be scored."""
    import glob
    import hashlib
    import json
    import os

    from conftest import BUNDLES, ROOT

    def digests(path):
        files = [path] if os.path.isfile(path) else glob.glob(os.path.join(path, "**", "*"), recursive=True)
        return {hashlib.md5(open(f, "rb").read()).hexdigest() for f in files if os.path.isfile(f)}

    checked = 0
    for bundle in BUNDLES:
        with open(os.path.join(ROOT, "bundles", bundle, "configs", "demo.json")) as f:
            real = json.load(f)["demo"].get("real")
        if not real:
            continue
        training = digests(shared(real["data"]["source"]))
        held_out = [real["data"].get("test_source"), real.get("test_data", {}).get("source"), *real.get("inputs", [])]
        for path in filter(None, held_out):
            assert not digests(shared(path)) & training, f"{bundle}: {path} overlaps {real['data']['source']}"
            checked += 1
    assert checked >= 4
