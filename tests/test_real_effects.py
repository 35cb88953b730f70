"""Issue 13: each bundle's real-data weights (``models/real``) on held-out real cases of ``../shared/data``, run as
the docs run them (``python tools/demo.py --bundle ... --real``), and the direction of the paper's effect there.

Skipped with the reason when the held-out data or the committed weights are absent. The figures the docs report
come from the same runs; these tests hold their direction, not their decimals.
"""

import json
import os

import pytest

from conftest import ROOT, shared
from medi2i.recipes import run_recipe


def _real_run(bundle: str, tmp_path, **extra) -> str:
    """``run_recipe(real=True)`` with the committed weights; returns the run's ``eval/`` folder."""
    bundle_dir = os.path.join(ROOT, "bundles", bundle)
    if not os.path.isfile(os.path.join(bundle_dir, "models", "real", "model.pt")):
        pytest.skip(f"no real-data weights in {bundle_dir}/models/real")
    result = run_recipe(bundle_dir, str(tmp_path / "run"), real=True, extra_overrides=extra or None)
    return os.path.join(result["output_dir"], "eval")


def _rows(path: str, key: str) -> dict:
    with open(path) as f:
        return {row[key]: row for row in json.load(f)["rows"]}


def test_denoising_beats_noisy_median_and_nlm_on_held_out_radiographs(tmp_path):
    """Med-cDiff (DDIM 50, eta 1) against the noisy input, a 3x3 median and non-local means on the five held-out NIH
    radiographs: higher mean PSNR and SSIM, lower NMSE than each."""
    shared("chest_xray_nih")
    rows = _rows(os.path.join(_real_run("chest_xray_denoising_cddpm", tmp_path), "metrics.json"), "method")
    ours = rows["Med-cDiff"]
    assert ours["n"] == 5
    for baseline in ("noisy input", "median 3x3", "non-local means"):
        assert ours["psnr"] > rows[baseline]["psnr"] and ours["ssim"] > rows[baseline]["ssim"], baseline
        assert ours["nmse"] < rows[baseline]["nmse"], baseline


def test_inpainting_inserts_the_tumour_inside_the_mask_of_a_held_out_case(tmp_path):
    """Segmentation-guided inpainting of the held-out BraTS case's tumour-free slices: the segmented tumour lies
    inside the dilated desired mask, overlaps it (Dice far above the input's), and FLAIR brightens inside the mask
    far more than outside it (an intensity check independent of the guiding segmenter)."""
    shared("brats2018", "Brats18_TCIA01_201_1")
    row = _rows(os.path.join(_real_run("brats_mri_tumor_inpainting_segmentation_guidance", tmp_path, healthy_per_case=3),
                             "metrics.json"), "target")["inpainted"]
    assert row["n"] == 3
    assert row["tumour_inside_mask"] > 0.9
    assert row["dice_output"] > row["dice_input"] + 0.5
    assert row["flair_change_inside_mask"] > 5 * abs(row["flair_change_outside_mask"])
    assert row["psnr_outside_mask"] > 25


def test_growth_follows_the_requested_size_and_grows_and_shrinks_held_out_tumours(tmp_path):
    """Regression guidance (the real recipe: c = 1000, regressor trained on t < 400) on the held-out BraTS case's
    tumour slices, desired sizes i = 0 and 0.2 and the fixed s_t = +0.3 ("grow") and -0.3 ("shrink"): the tumour
    measured on the output (FLAIR hyperintensity relative to its own median, not the guiding regressor) is larger for
    i = 0.2 than for i = 0, larger than the input's for grow and smaller for shrink, each on at least 80 % of the
    slices (the issue's target; measured 91 %, 96 % and 87 %), with the brain outside the tumour kept (PSNR >= 28 dB
    on average). The same holds by an independent measure, the tumour-inpainting bundle's segmenter trained on the
    labels (96 %, 91 %, 91 %). With the input's median as a fixed threshold grow holds too (100 %); shrink does not
    (57 %: it also brightens the brain, see the bundle's docs)."""
    shared("brats2018", "Brats18_TCIA01_201_1")
    eval_dir = _real_run("brats_mri_tumor_growth_regression_guidance", tmp_path, desired_values=[0.0, 0.2])
    (row,) = _rows(os.path.join(eval_dir, "effects.json"), "slices").values()
    for measure in ("", "_segmenter"):
        assert row["slices"] >= 20 and row["monotonic_share" + measure] >= 0.8, row
        assert row["grow_share" + measure] >= 0.8 and row["shrink_share" + measure] >= 0.8, row
    assert row["grow_share_fixed_threshold"] >= 0.8, row
    requested = [r for r in _rows(os.path.join(eval_dir, "metrics.json"), "target").values() if r["target"].startswith("desired")]
    assert len(requested) == 2 and all(r["psnr_outside_tumour"] >= 28 for r in requested), requested


def test_contrast_classifier_recognises_generated_contrasts_of_the_requested_kind(tmp_path):
    """Classifier-free guided generation (w = 0 and 2, 4 samples per contrast) judged by the DenseNet trained on real
    BraTS slices: at w = 2 every requested contrast is recognised at least half the time and on average at least
    three times in four (chance: one in four), more often than without guidance (w = 0)."""
    shared("brats2018", "Brats18_TCIA01_201_1")
    eval_dir = _real_run("brain_mri_contrast_generation_cddpm", tmp_path, guidance_weights=[0, 2], num_samples=4)
    mean = {w: row["mean_accuracy"] for w, row in _rows(os.path.join(eval_dir, "summary.json"), "guidance_weight").items()}
    with open(os.path.join(eval_dir, "metrics.json")) as f:  # one row per (w, contrast): not keyed by one column
        per_contrast = [row for row in json.load(f)["rows"] if row["guidance_weight"] == 2]
    assert len(per_contrast) == 4 and all(row["n"] == 4 and row["accuracy"] >= 0.5 for row in per_contrast), per_contrast
    assert mean[2] >= 0.75 and mean[2] > mean[0], mean


def test_aldm_beats_identity_and_ms_spade_alone_on_the_held_out_volume(tmp_path):
    """ALDM with the real recipe's sampling (pure noise, one DDIM step: the step count chosen on the validation
    volumes) on the held-out BraTS 2018 volume, mean over the 12 off-diagonal source -> target pairs: higher PSNR and
    SSIM and lower NMSE than the source itself (identity; measured 19.94 / 0.130 / 0.660 against 16.87 / 0.309 /
    0.622) and than MS-SPADE alone, its own condition decoded without the diffusion stage (19.02 / 0.163 / 0.651),
    and the output depends on the source (for each target, the three sources give PSNRs over 0.2 dB apart)."""
    shared("brats2018", "Brats18_TCIA01_201_1")
    with open(os.path.join(_real_run("brats_mri_multimodal_translation_ldm3d", tmp_path), "metrics.json")) as f:
        rows = [r for r in json.load(f)["rows"] if r["source"] != r["target"]]
    mean = {m: {k: sum(r[k] for r in rows if r["method"] == m) / 12 for k in ("psnr", "nmse", "ssim")}
            for m in ("aldm", "spade_only", "identity")}
    assert sum(r["method"] == "aldm" for r in rows) == 12
    aldm = mean["aldm"]
    for baseline in ("identity", "spade_only"):
        other = mean[baseline]
        assert aldm["psnr"] > other["psnr"] and aldm["nmse"] < other["nmse"] and aldm["ssim"] > other["ssim"], (baseline, mean)
    by_target = {}
    for r in rows:
        if r["method"] == "aldm":
            by_target.setdefault(r["target"], []).append(r["psnr"])
    assert all(max(p) - min(p) > 0.2 for p in by_target.values()), by_target  # measured 0.50-1.65 dB
