"""Readers, slices, phantoms and datalists, on phantoms and on the real samples in ../shared/data."""

import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import LoadImage

from conftest import shared
from medi2i import InputError
from medi2i.data import (ScaleBrainIntensity, build_slice_datalist, find_cases, load_case, load_section, make_phantom,
                         relative_tumour_size, write_phantom_dataset)
from medi2i.data.cases import prepare_slice, resolve_cases
from medi2i.data.ixi import find_ixi_subjects
from medi2i.data.phantoms import LABELS
from medi2i.data.slices import axial_slice, iter_slices
from medi2i.metrics import TumourSize


def test_phantom_is_deterministic_and_carries_its_ground_truth():
    a, seg_a, truth = make_phantom((48, 48, 16), seed=5, tumour_radius=0.45)
    b, seg_b, _ = make_phantom((48, 48, 16), seed=5, tumour_radius=0.45)
    c, _, _ = make_phantom((48, 48, 16), seed=6)
    assert np.array_equal(a, b) and np.array_equal(seg_a, seg_b) and not np.array_equal(a, c)
    assert truth["tumour_voxels"] == int((seg_a > 0).sum()) > 0
    assert set(np.unique(seg_a)) == {0, *LABELS.values()}
    brain = a[3] > 0
    assert truth["brain_voxels"] == int(brain.sum())
    # contrasts: oedema is FLAIR-bright, the enhancing rim is brighter in t1ce than in t1
    flair, t1, t1ce = a[3], a[0], a[1]
    assert flair[seg_a == 2].mean() > 1.5 * flair[brain & (seg_a == 0)].mean()
    assert t1ce[seg_a == 4].mean() > 1.5 * t1[seg_a == 4].mean()
    healthy, seg_h, truth_h = make_phantom((48, 48, 16), seed=5, tumour=False)
    assert not truth_h["tumour"] and seg_h.sum() == 0


@pytest.mark.parametrize("naming", ["brats2018", "brats2023"])
def test_phantom_dataset_reads_back_through_the_brats_readers(tmp_path, naming):
    truths = write_phantom_dataset(str(tmp_path), num_cases=3, shape=(32, 32, 8), naming=naming, healthy_fraction=0.34)
    cases = find_cases(str(tmp_path))
    assert [c["case"] for c in cases] == [t["case"] for t in truths]
    image, seg = load_case(cases[2])
    assert image.shape == (4, 32, 32, 8) and seg.shape == (1, 32, 32, 8)
    assert int((seg > 0).sum()) == truths[2]["tumour_voxels"]
    assert torch.allclose(image.affine, torch.diag(torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=torch.float64)))


def test_real_brats2018_case(tmp_path):
    folder = shared("brats2018", "Brats18_TCIA01_201_1")
    (case,) = find_cases(os.path.dirname(folder))
    image, seg = load_case(case)
    assert image.shape == (4, 240, 240, 155) and seg.shape == (1, 240, 240, 155)
    flair = nib.load(os.path.join(folder, "Brats18_TCIA01_201_1_flair.nii.gz"))
    assert np.allclose(image[3].numpy(), flair.get_fdata())  # channel order t1, t1ce, t2, flair
    assert np.allclose(image.affine.numpy(), flair.affine)
    scaled = ScaleBrainIntensity()(image)
    assert scaled.min() == 0 and scaled.max() == 1 and (scaled[:, image[3] == 0] == 0).all()
    slices = list(iter_slices(scaled, seg, image_size=256))
    assert 0 < len(slices) < 155  # slices without brain dropped
    k, img, lab, size = max(slices, key=lambda s: s[3])
    assert img.shape == (4, 256, 256, 1) and lab.shape == (1, 256, 256, 1)
    assert 0.2 < size < 0.3  # whole tumour / brain on the largest slice of this glioma
    # the FLAIR-hyperintensity measure agrees with the expert label on the tumour slices
    measure = TumourSize()
    dices = []
    for k in range(70, 130, 10):
        s, g = axial_slice(scaled, k)[None, ..., 0], axial_slice(seg, k)[None, ..., 0] > 0
        _, mask = measure(s, s[:, 3:4] != 0)
        dices.append(2 * (mask & g).sum().item() / (mask.sum().item() + g.sum().item()))
    assert np.mean(dices) > 0.85


def test_real_brats2023_case_without_label():
    folder = shared("brats2023", "BraTS-GLI-00001-000")
    (case,) = find_cases(folder)
    assert case["case"] == "BraTS-GLI-00001-000" and "label" not in case  # the -mask file is not a label map
    assert [os.path.basename(p).split("-")[-1] for p in case["image"]] == ["t1n.nii.gz", "t1c.nii.gz", "t2w.nii.gz", "t2f.nii.gz"]
    prepared = prepare_slice({**case, "name": case["case"]}, image_size=256)
    assert prepared.image.shape == (4, 256, 256, 1) and prepared.label is None
    assert prepared.slice_index is not None and prepared.brain.sum() > 1000
    restored = prepared.restore(prepared.image.as_tensor())
    assert restored.shape == (4, 240, 240, 1)
    volume, _ = load_case(case)
    assert torch.allclose(restored.affine, axial_slice(volume, prepared.slice_index).affine)


def test_decathlon_layout_channel_order(tmp_path):
    image, seg, _ = make_phantom((24, 24, 6), seed=1)
    root = tmp_path / "Task01_BrainTumour"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    decathlon = image[[3, 0, 1, 2]]  # FLAIR, T1w, T1gd, T2w
    nib.save(nib.Nifti1Image(np.moveaxis(decathlon, 0, -1), np.eye(4)), str(root / "imagesTr" / "BRATS_001.nii.gz"))
    nib.save(nib.Nifti1Image(seg, np.eye(4)), str(root / "labelsTr" / "BRATS_001.nii.gz"))
    json.dump({"training": [{"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}], "test": []},
              open(root / "dataset.json", "w"))
    (case,) = find_cases(str(tmp_path))
    loaded, _ = load_case(case)
    assert np.allclose(loaded.numpy(), image, atol=1e-6)


def test_datalist_splits_by_case_and_labels_slices(tmp_path):
    write_phantom_dataset(str(tmp_path / "ph"), num_cases=6, shape=(32, 32, 8))
    path = build_slice_datalist(str(tmp_path / "ph"), str(tmp_path / "sl"), image_size=40, seed=0)
    sections = {s: load_section(path, s) for s in ("training", "validation", "test")}
    cases = [{e["case"] for e in entries} for entries in sections.values()]
    assert all(cases) and not (cases[0] & cases[1] or cases[0] & cases[2] or cases[1] & cases[2])
    entry = max(sections["training"], key=lambda e: e["relative_tumour_size"])
    image = load_case({"image": entry["image"]})[0]
    assert image.shape[1:] == (40, 40, 1) and 0 <= image.min() and image.max() <= 1
    seg = LoadImage(image_only=True, ensure_channel_first=True)(entry["label"])
    assert seg.shape == (1, 40, 40, 1)
    assert entry["relative_tumour_size"] == pytest.approx(relative_tumour_size(seg, image), abs=1e-6)
    assert entry["has_tumour"] == 1
    assert len(load_section(path, "test_cases")) == len(cases[2])


def test_bad_cases_are_one_line_errors(tmp_path):
    write_phantom_dataset(str(tmp_path / "ph"), num_cases=1, shape=(16, 16, 4))
    folder = tmp_path / "ph" / "Phantom_000"
    os.remove(folder / "Phantom_000_t1ce.nii.gz")
    with pytest.raises(InputError, match="Phantom_000: case is missing modality t1ce"):
        find_cases(str(folder))
    bad = tmp_path / "bad"
    bad.mkdir()
    arr = np.ones((16, 16, 1, 4), np.float32)
    arr[0, 0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(bad / "nan.nii.gz"))
    with pytest.raises(InputError, match="nan.nii.gz: contains 1 non-finite voxel"):
        load_case({"image": str(bad / "nan.nii.gz")})
    nib.save(nib.Nifti1Image(np.ones((16, 16, 1, 3), np.float32), np.eye(4)), str(bad / "three.nii.gz"))
    with pytest.raises(InputError, match="expected 4 channels"):
        load_case({"image": str(bad / "three.nii.gz")})
    with pytest.raises(InputError, match="no such file or folder"):
        resolve_cases(str(tmp_path / "nowhere"))


def test_png_inputs_per_modality_files_not_one_rgba_file(tmp_path):
    from PIL import Image

    image, _, _ = make_phantom((48, 48, 8), seed=2)
    arrays = (np.clip(image[..., 4], 0, 1) * 255).astype(np.uint8)
    (tmp_path / "caseA").mkdir()
    for c, modality in enumerate(("t1", "t1ce", "t2", "flair")):
        Image.fromarray(arrays[c]).save(tmp_path / "caseA" / f"caseA_{modality}.png")
    Image.fromarray(np.moveaxis(arrays, 0, -1), mode="RGBA").save(tmp_path / "rgba.png")
    per_file = prepare_slice(resolve_cases(str(tmp_path / "caseA"))[0], image_size=64)
    assert per_file.image.shape == (4, 64, 64, 1)
    with pytest.raises(InputError, match="rgba.png: expected 4 channels .* found 1; a PNG is one grey image"):
        prepare_slice(resolve_cases(str(tmp_path / "rgba.png"))[0], image_size=64)  # alpha is transparency, not FLAIR
    assert per_file.restore(per_file.image.as_tensor()).shape == (4, 48, 48, 1)


def test_real_ixi_subject_found_with_its_contrasts(tmp_path):
    folder = shared("ixi_thickslice")
    (subject,) = find_ixi_subjects(folder)
    assert subject["subject"] == "IXI002-Guys-0828" and {"T1", "T2", "PD"} <= set(subject)
    assert find_ixi_subjects(folder, contrasts=("PD",)) == [{"subject": "IXI002-Guys-0828", "PD": subject["PD"]}]
    with pytest.raises(InputError, match="no IXI image found"):
        find_ixi_subjects(str(tmp_path))


def test_datalist_keeps_case_ids_that_name_folders(tmp_path):
    """MONAI's loader makes any value naming an existing path absolute; a case id must stay an id."""
    import json

    from medi2i.data import load_section

    (tmp_path / "Case_001").mkdir()
    (tmp_path / "Case_001" / "img.nii.gz").write_bytes(b"")
    (tmp_path / "datalist.json").write_text(json.dumps({"test": [{"case": "Case_001", "image": "Case_001/img.nii.gz"}]}))
    item = load_section(str(tmp_path / "datalist.json"), "test")[0]
    assert item["case"] == "Case_001" and item["image"] == str(tmp_path / "Case_001" / "img.nii.gz")
    (tmp_path / "Series01").mkdir()  # a DICOM series folder named without "/" or "." is still a path
    (tmp_path / "datalist.json").write_text(json.dumps({"test": [{"case": "Series01", "image": "Series01"}]}))
    item = load_section(str(tmp_path / "datalist.json"), "test")[0]
    assert item["case"] == "Series01" and item["image"] == str(tmp_path / "Series01")


def test_rgba_png_mask_keeps_only_the_painted_pixels(tmp_path):
    """Drawing tools save RGBA: the alpha channel (opaque everywhere) must not mark the whole image."""
    from PIL import Image

    from medi2i.data.masks import load_mask

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[2:4, 2:5, :3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "mask.png")
    mask = load_mask(str(tmp_path / "mask.png"))
    assert mask.shape == (1, 8, 8) and int(mask.sum()) == 6
