"""The tumour-inpainting bundle through monai.bundle: tiny train -> infer -> evaluate (segmentation and classifier
guidance), inference on the growth bundle's DDPM checkpoint, one DDPM description for both bundles, the MONAI
Label entry points, the real BraTS case, and bad input."""

import csv
import glob
import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from conftest import GROWTH, ROOT, expect_cli_error, expect_input_error, shared
from medi2i.configsync import sync_diffusion
from medi2i.recipes import run_step
from medi2i.verify import tiny_overrides

BUNDLE = os.path.join(ROOT, "bundles", "brats_mri_tumor_inpainting_segmentation_guidance")
CONFIGS = os.path.join(BUNDLE, "configs")


@pytest.fixture(scope="session")
def inpainting_run(tiny_run):
    """This bundle's recipe at tiny size: phantoms -> DDPM, segmenter, classifier -> both inferences -> evaluations."""
    return tiny_run(BUNDLE)


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_tiny_train_infer_evaluate(inpainting_run):
    out = inpainting_run["output_dir"]
    for name in ("model.pt", "segmenter.pt", "classifier.pt"):
        assert os.path.isfile(os.path.join(out, "models", name)), name
    rows = _rows(os.path.join(out, "outputs", "summary.csv"))
    assert rows and {r["target"] for r in rows} == {"inpainted"}
    for row in rows:
        folder = os.path.join(out, "outputs", row["case"])
        assert {"input.nii.gz", "mask.nii.gz", "inpainted.nii.gz", "inpainted_difference.nii.gz", "panel.png"} <= set(os.listdir(folder))
        source = glob.glob(os.path.join(inpainting_run["dataset_dir"], "slices", "*", row["case"] + ".nii.gz"))[0]
        written = nib.load(os.path.join(folder, "inpainted.nii.gz"))
        assert written.shape == (32, 32, 1, 4) and np.allclose(written.affine, nib.load(source).affine)  # affine kept
        mask = np.asarray(nib.load(os.path.join(folder, "mask.nii.gz")).dataobj)
        flair = np.asarray(nib.load(source).dataobj)[..., 3]
        assert mask.sum() > 0 and np.all(flair[mask[..., 0] > 0] > 0)  # a non-empty z inside the brain
    metrics = json.load(open(os.path.join(out, "eval", "metrics.json")))["rows"][0]
    assert metrics["n"] == len(rows) and 0 <= metrics["share_inside_mask"] <= 1 and 0 <= metrics["dice_output"] <= 1
    assert np.isfinite(metrics["psnr_outside_mask"]) and os.path.isfile(os.path.join(out, "eval", "metrics.md"))
    anomaly = json.load(open(os.path.join(out, "eval_classifier", "metrics.json")))["rows"][0]
    assert anomaly["target"] == "healthy" and 0 <= anomaly["auroc"] <= 1 and 0 <= anomaly["best_dice"] <= 1
    for row in _rows(os.path.join(out, "outputs_classifier", "summary.csv")):
        assert os.path.isfile(os.path.join(out, "outputs_classifier", row["case"], "healthy_difference.nii.gz"))


def test_inference_on_the_growth_bundles_ddpm(inpainting_run, tiny_growth_run, tmp_path):
    """One DDPM for all guidances: the checkpoint written by the growth bundle's train_diffusion.json."""
    growth_model = os.path.join(tiny_growth_run["ckpt_dir"], "model.pt")
    run_step(BUNDLE, "inference.json", tiny_overrides(BUNDLE, inpainting_run, ddpm_checkpoint=growth_model, output_dir=str(tmp_path / "out")))
    rows = _rows(tmp_path / "out" / "summary.csv")
    assert rows == [{**r, "seconds_per_image": rows[i]["seconds_per_image"]}
                    for i, r in enumerate(_rows(os.path.join(inpainting_run["output_dir"], "outputs", "summary.csv")))]
    case = rows[0]["case"]
    ours = nib.load(os.path.join(inpainting_run["output_dir"], "outputs", case, "inpainted.nii.gz")).get_fdata()
    theirs = nib.load(str(tmp_path / "out" / case / "inpainted.nii.gz")).get_fdata()
    # the same train_diffusion.json on the same phantoms with the same seed trains the same DDPM, bit for bit
    mine = torch.load(os.path.join(inpainting_run["ckpt_dir"], "model.pt"), weights_only=True)
    assert all(torch.equal(mine[k], v) for k, v in torch.load(growth_model, weights_only=True).items())
    assert np.allclose(ours, theirs)


def test_both_bundles_describe_the_same_ddpm():
    assert sync_diffusion(GROWTH, BUNDLE, ("inference.json", "inference_classifier.json"), write=False) == []
    small = {"image_size": 32, "norm_num_groups": 8, "ddpm_channels": [8, 16], "ddpm_attention_levels": [False, True]}

    def shapes(bundle, config):
        parser = ConfigParser()
        parser.read_config(os.path.join(bundle, "configs", config))
        parser.update(small)
        return {k: v.shape for k, v in parser.get_parsed_content("network_def").state_dict().items()}

    reference = shapes(GROWTH, "train_diffusion.json")
    for config in ("train_diffusion.json", "inference.json", "inference_classifier.json"):
        assert shapes(BUNDLE, config) == reference, config


def test_paper_settings_by_default():
    parser = ConfigParser()
    parser.read_config(os.path.join(CONFIGS, "inference.json"))
    assert (parser["noise_level"], parser["gradient_scale"], parser["stride"], parser["image_size"]) == (400, 5.0, 1, 256)
    parser.read_config(os.path.join(CONFIGS, "train_segmenter.json"))
    segmenter = parser.get_parsed_content("network_def")
    assert segmenter.out_channels == 1 and list(segmenter.block_out_channels) == [128, 128, 256, 256, 512, 512]


def test_uncertainty_maps_from_stochastic_samples(capsys, inpainting_run, tmp_path):
    """N translations with DDIM eta > 0: per-pixel mean and standard deviation (with Bessel's correction, N - 1)
    written next to the output, the first sample. With N = 2 samples a, b: mean = (a + b) / 2 and
    std = |a - b| / sqrt(2), so |output - mean| = |a - b| / 2 = std / sqrt(2) exactly."""
    overrides = tiny_overrides(BUNDLE, inpainting_run, output_dir=str(tmp_path / "out"), uncertainty_samples=2, ddim_eta=0.5)
    run_step(BUNDLE, "inference.json", overrides)
    case = next(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    output, mean, std = (np.asarray(nib.load(str(case / f"inpainted{s}.nii.gz")).dataobj) for s in ("", "_mean", "_std"))
    assert mean.shape == std.shape == output.shape and (std >= 0).all() and std.max() > 0
    assert not np.allclose(output, mean)  # the output is one sample, the mean averages two different ones
    assert np.allclose(np.abs(output - mean), std / np.sqrt(2), atol=1e-6)
    expect_input_error(capsys, BUNDLE, {**overrides, "ddim_eta": 0.0, "output_dir": str(tmp_path / "x")},
                       "set the sampler's eta > 0")
    assert not (tmp_path / "x").exists()


class _FlairSegmenter(torch.nn.Module):
    """S(x) > 0.5 where FLAIR > 0.6 (no weights: its checkpoint is an empty state dict)."""

    def forward(self, x, timesteps):
        return 100 * (x[:, 3:4] - 0.6)


def test_evaluations_on_known_maps(tmp_path):
    """What evaluate*.json report, on maps with known answers: an anomaly map equal to the tumour label has AUROC 1
    and best Dice 1, its inverse AUROC 0 and Dice 0; a change only inside the mask z has share 1 (and the segmenter
    finds z on the output only), as much change again outside the dilated z halves the share (and the share of the
    segmented tumour inside it)."""
    from medi2i.workflows.anomaly_evaluation import AnomalyEvaluation
    from medi2i.workflows.inpainting_evaluation import InpaintingEvaluation

    folder = tmp_path / "infer" / "case"
    folder.mkdir(parents=True)

    def save(name, *channels):  # (H, W) channels -> (H, W, 1, C), as the inference configs write them
        nib.save(nib.Nifti1Image(np.stack(channels, -1)[:, :, None].astype(np.float32), np.eye(4)), str(folder / f"{name}.nii.gz"))

    brain, tumour, z, elsewhere = (np.zeros((32, 32), np.float32) for _ in range(4))
    brain[4:28, 4:28], tumour[10:16, 12:20], z[8:12, 8:16], elsewhere[20:24, 8:16] = 0.5, 1, 1, 1
    save("input", *[brain] * 4)  # FLAIR (the last channel) > 0 on the brain
    save("label", tumour)
    save("mask", z)
    save("healthy_difference", tumour)
    save("inverted_difference", 1 - tumour)
    save("inpainted", *[brain + 0.3 * z] * 4)
    save("half", *[brain + 0.3 * (z + elsewhere)] * 4)
    targets = ("healthy", "inverted", "inpainted", "half")
    (tmp_path / "infer" / "summary.csv").write_text("case,target\n" + "".join(f"case,{t}\n" for t in targets))
    torch.save({}, tmp_path / "segmenter.pt")
    exact, inverted = (AnomalyEvaluation(str(tmp_path / "infer"), str(tmp_path / t), t).run()[0] for t in targets[:2])
    assert (exact["auroc"], exact["best_dice"], inverted["auroc"], inverted["best_dice"]) == (1, 1, 0, 0)
    inside, half = (InpaintingEvaluation(str(tmp_path / "infer"), str(tmp_path / t), _FlairSegmenter(), str(tmp_path / "segmenter.pt"),
                                         target=t).run()[0] for t in targets[2:])
    assert inside["share_inside_mask"] == pytest.approx(1) and half["share_inside_mask"] == pytest.approx(0.5)
    assert (inside["dice_output"], inside["dice_input"]) == (1, 0) and half["dice_output"] == pytest.approx(2 / 3)
    assert inside["tumour_inside_mask"] == 1 and half["tumour_inside_mask"] == pytest.approx(0.5)  # where the tumour is
    assert inside["flair_change_inside_mask"] == pytest.approx(0.3) and inside["flair_change_outside_mask"] == pytest.approx(0)
    assert half["flair_change_outside_mask"] > 0.01  # FLAIR raised outside the dilated z too


def test_real_brats_case_anomaly_map(inpainting_run, tmp_path):
    """The real BraTS 2018 case through classifier-guided healthy translation and the anomaly-map evaluation
    (tiny networks trained on phantoms: this checks reading, 240 -> 256 padding and evaluation on real data,
    not quality; the Dice/AUROC it prints are not results)."""
    case = shared("brats2018", "Brats18_TCIA01_201_1")
    common = tiny_overrides(BUNDLE, inpainting_run, image_size=256, inputs=case, bundle_root=str(tmp_path), noise_level=200, stride=200)
    run_step(BUNDLE, "inference_classifier.json", common)
    run_step(BUNDLE, "evaluate_classifier.json", common)
    folder = tmp_path / "outputs_classifier" / "Brats18_TCIA01_201_1"
    written = nib.load(str(folder / "healthy_difference.nii.gz"))
    flair = nib.load(os.path.join(case, "Brats18_TCIA01_201_1_flair.nii.gz"))
    assert written.shape == (240, 240, 1, 1)
    assert np.allclose(written.affine[:3, 3], flair.affine[:3, 3] + flair.affine[:3, 2] * 89)  # the largest-tumour slice
    anomaly = json.load(open(tmp_path / "eval_classifier" / "metrics.json"))["rows"][0]
    assert anomaly["n"] == 1 and 0 <= anomaly["auroc"] <= 1 and 0 < anomaly["best_dice"] <= 1


# ---- bad input: one line on stderr, exit status 2, nothing written -------------------------------------------

def test_bad_masks_and_checkpoints(capsys, inpainting_run, tmp_path):
    args = tiny_overrides(BUNDLE, inpainting_run, output_dir=str(tmp_path / "out"))
    nib.save(nib.Nifti1Image(np.ones((20, 32), np.uint8), np.eye(4)), str(tmp_path / "wrong.nii.gz"))
    expect_input_error(capsys, BUNDLE, {**args, "mask_file": str(tmp_path / "wrong.nii.gz")},
                       "wrong.nii.gz: mask shape (20, 32) differs from the image slice (32, 32)")
    nib.save(nib.Nifti1Image(np.zeros((32, 32), np.uint8), np.eye(4)), str(tmp_path / "empty.nii.gz"))
    expect_input_error(capsys, BUNDLE, {**args, "mask_file": str(tmp_path / "empty.nii.gz")}, "empty.nii.gz: mask is empty")
    expect_input_error(capsys, BUNDLE, {**args, "mask_centre": [0, 0], "mask_radius": 3}, "mask lies outside the brain")
    expect_input_error(capsys, BUNDLE, {**args, "ckpt_dir": str(tmp_path / "none"), "ddpm_checkpoint": os.path.join(inpainting_run["ckpt_dir"], "model.pt")},
                       "segmenter.pt: segmenter checkpoint not found")
    expect_input_error(capsys, BUNDLE, {**args, "ddpm_checkpoint": str(tmp_path / "none.pt")}, "none.pt: diffusion model checkpoint not found")
    expect_input_error(capsys, BUNDLE, {**args, "inference_dir": str(tmp_path / "none"), "output_dir": str(tmp_path / "out")},
                       "summary.csv: inference summary", "evaluate.json")
    assert not os.path.exists(tmp_path / "out")


def test_command_line_error_is_one_line_with_nonzero_exit(tmp_path):
    configs = [os.path.join(CONFIGS, name) for name in ("inference.json", "demo.json")]
    expect_cli_error(configs, os.path.join(CONFIGS, "metadata.json"), tmp_path, str(tmp_path / "missing_slice.nii.gz"),
                     f"{tmp_path / 'missing_slice.nii.gz'}: no such file or folder")


def test_monai_label_pieces_of_the_classifier_path(inpainting_run):
    """inference_classifier.json serves like inference.json: PrepareSliced in, RestoreSliced out. At L = 1 without
    guidance the encode-decode returns its input, so the output must be the prepared slice back on the input grid."""
    from medi2i.data import PrepareSliced, RestoreSliced
    from medi2i.serving import bundle_infer

    image = sorted(glob.glob(os.path.join(inpainting_run["dataset_dir"], "**", "*.nii.gz"), recursive=True))[0]
    overrides = tiny_overrides(BUNDLE, inpainting_run, "inference_classifier.json", noise_level=1, stride=1, gradient_scale=0.0)
    out = bundle_infer(BUNDLE, image, overrides=overrides, model_file=os.path.join(inpainting_run["ckpt_dir"], "model.pt"),
                       overlays=tuple(os.path.join(CONFIGS, n) for n in ("inference_classifier.json", "demo.json")))
    prepared = PrepareSliced(image_size=overrides["image_size"])({"image": image})
    expected = RestoreSliced()({**prepared, "pred": prepared["image"]})["pred"]
    source = nib.load(image)
    assert tuple(out.shape) == tuple(expected.shape) and np.allclose(out.affine.numpy(), source.affine)
    assert torch.allclose(torch.as_tensor(out), torch.as_tensor(expected), atol=0.05)


def test_healthy_slices_per_case(tmp_path):
    """Inputs for inpainting: per case the tumour-free slices with the most brain, ``per_case`` of them."""
    from medi2i import InputError
    from medi2i.data import healthy_slices

    entries = []
    for case in ("a", "b"):
        for k, (brain, tumour) in enumerate([(5, 0), (9, 0), (7, 0), (12, 1)]):
            image = np.zeros((8, 8, 1, 4), np.float32)
            image.reshape(-1, 4)[:brain, 3] = 1  # FLAIR > 0 on ``brain`` pixels
            path = str(tmp_path / f"{case}{k}.nii.gz")
            nib.save(nib.Nifti1Image(image, np.eye(4)), path)
            entries.append({"image": path, "case": case, "has_tumour": tumour})
    (tmp_path / "datalist.json").write_text(json.dumps({"test": entries}))
    names = lambda files: [os.path.basename(f)[:2] for f in files]  # noqa: E731
    assert names(healthy_slices(str(tmp_path / "datalist.json"))) == ["a1", "b1"]
    assert names(healthy_slices(str(tmp_path / "datalist.json"), per_case=2)) == ["a1", "a2", "b1", "b2"]
    assert names(healthy_slices(str(tmp_path / "datalist.json"), max_slices=3, per_case=5)) == ["a1", "a2", "a0"]
    with pytest.raises(InputError, match="healthy_per_case"):
        healthy_slices(str(tmp_path / "datalist.json"), per_case=0)
