"""Reliability of inference and evaluation inputs (issue 15): strict flags, output folders checked before any work,
no silent overwrite, range checks on numeric settings, one-line errors for bad evaluation inputs."""

import csv
import glob
import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigParser
from monai.networks.schedulers import DDPMScheduler
from PIL import Image

from conftest import GROWTH, ROOT, expect_input_error
from medi2i import InputError
from medi2i.data import write_phantom_dataset
from medi2i.diffusion import ConditionalDiffusionInferer, ConditionalSampler
from medi2i.recipes import run_step
from medi2i.settings import RULES, flag, parse_flags
from medi2i.verify import tiny_overrides

CONTRAST = os.path.join(ROOT, "bundles", "brain_mri_contrast_generation_cddpm")
ALDM = os.path.join(ROOT, "bundles", "brats_mri_multimodal_translation_ldm3d")
DENOISE = os.path.join(ROOT, "bundles", "chest_xray_denoising_cddpm")


@pytest.fixture
def growth(tiny_run, tmp_path):
    """Overrides of the growth bundle's inference at tiny size on one phantom case, writing to ``tmp_path/out``."""
    write_phantom_dataset(str(tmp_path / "data"), num_cases=1, shape=(32, 32, 8), healthy_fraction=0.0)
    return tiny_overrides(GROWTH, tiny_run(GROWTH), inputs=str(tmp_path / "data" / "Phantom_000"),
                          output_dir=str(tmp_path / "out"))


# ---- 1. flags: 'false' from the command line is False; anything else but true/false is refused ------------------

def test_flag_accepts_true_false_spellings_and_refuses_others():
    assert [flag(v, "x") for v in (True, "true", "TRUE", "Yes", "1", 1)] == [True] * 6
    assert [flag(v, "x") for v in (False, "false", "False", "no", "0", 0)] == [False] * 6
    for bad in ("maybe", "", 2, 0.5, None):
        with pytest.raises(InputError, match="overwrite: expected true or false"):
            flag(bad, "overwrite")


def test_flags_of_samplers_and_schedulers_are_parsed():
    scheduler = DDPMScheduler(num_train_timesteps=10, clip_sample="false")
    inferer = ConditionalDiffusionInferer(ConditionalSampler(scheduler, amp="false", clip_denoised="no"), keep_known="TRUE")
    parse_flags(inferer)
    assert (inferer.keep_known, inferer.sampler.amp, inferer.sampler.clip_denoised, scheduler.clip_sample) == (True, False, False, False)


def test_overwrite_false_on_the_command_line_refuses(capsys, growth):
    run_step(GROWTH, "inference.json", growth)
    for value, message in (("false", "output folder exists and is not empty"), ("maybe", "overwrite: expected true or false, got 'maybe'")):
        expect_input_error(capsys, GROWTH, {**growth, "overwrite": value}, message)


def test_trajectory_false_writes_no_trajectory(tiny_run, tmp_path):
    run_step(CONTRAST, "inference.json", tiny_overrides(CONTRAST, tiny_run(CONTRAST), output_dir=str(tmp_path / "out"),
                                                        trajectory="false"))
    assert os.path.isfile(tmp_path / "out" / "grid.png") and not glob.glob(str(tmp_path / "out" / "trajectory*"))


def test_degrade_inputs_false_does_not_degrade(tiny_run, tmp_path):
    run_step(DENOISE, "inference.json", tiny_overrides(DENOISE, tiny_run(DENOISE), output_dir=str(tmp_path / "out"),
                                                       degrade_inputs="false"))
    with open(tmp_path / "out" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["has_target"] == "0" for r in rows)  # degraded cases keep their clean image as target


# ---- 2, 3. output folders: checked before any work, non-empty refused, staging never left ------------------------

def test_output_folder_under_a_file_fails_before_sampling(capsys, growth, tmp_path):
    (tmp_path / "file").write_text("x")
    expect_input_error(capsys, GROWTH, {**growth, "output_dir": str(tmp_path / "file" / "out")},
                       f"cannot create the output folder: {tmp_path / 'file'} is a file")
    expect_input_error(capsys, GROWTH, {**growth, "output_dir": str(tmp_path / "file")}, "output path is a file")
    run_step(GROWTH, "inference.json", growth)
    expect_input_error(capsys, GROWTH, {**growth, "inference_dir": growth["output_dir"], "output_dir": str(tmp_path / "file" / "eval")},
                       "is a file", "evaluate.json")


def test_unwritable_output_folder_fails_before_sampling(capsys, monkeypatch, growth, tmp_path):
    locked, access = tmp_path / "locked", os.access
    locked.mkdir(mode=0o500)  # root ignores the mode: os.access answers as for another user
    monkeypatch.setattr(os, "access", lambda path, mode: access(path, mode) and not str(path).startswith(str(locked)))
    expect_input_error(capsys, GROWTH, {**growth, "output_dir": str(locked / "out")},
                       f"output folder cannot be written (no permission on {locked})")


def test_output_folder_holding_other_cases_is_refused(capsys, growth, tmp_path):
    other = tmp_path / "out" / "other_case"
    other.mkdir(parents=True)
    (other / "input.nii.gz").write_text("an earlier run")
    expect_input_error(capsys, GROWTH, growth, "output folder exists and is not empty (1 entries, e.g. other_case)")
    assert os.listdir(tmp_path / "out") == ["other_case"]


def test_overwrite_says_what_it_replaces(capsys, growth):
    run_step(GROWTH, "inference.json", growth)
    with open(os.path.join(growth["output_dir"], "summary.csv")) as f:
        rows = len(list(csv.DictReader(f)))
    capsys.readouterr()
    run_step(GROWTH, "inference.json", {**growth, "overwrite": "true"})
    err = capsys.readouterr().err
    assert "overwrite=true: replacing Phantom_000, summary.csv in" in err and f"(summary.csv had {rows} rows)" in err


def test_evaluation_folder_is_not_overwritten(capsys, growth, tmp_path):
    run_step(GROWTH, "inference.json", growth)
    evaluate = {**growth, "inference_dir": growth["output_dir"], "output_dir": str(tmp_path / "eval")}
    run_step(GROWTH, "evaluate.json", evaluate)
    before = os.path.getmtime(tmp_path / "eval" / "metrics.json")
    expect_input_error(capsys, GROWTH, evaluate, "output folder exists and is not empty", "evaluate.json")
    assert os.path.getmtime(tmp_path / "eval" / "metrics.json") == before
    run_step(GROWTH, "evaluate.json", {**evaluate, "overwrite": True})


def test_staging_folder_of_a_killed_run_is_removed(capsys, growth, tmp_path):
    stale = tmp_path / "out" / ".staging-999999999-abc"  # no such process: its run was killed
    stale.mkdir(parents=True)
    (stale / "input.nii.gz").write_text("half written")
    older = tmp_path / ".staging-k2j4_x9q"  # the older name, beside the output folder
    older.mkdir()
    live = tmp_path / "out" / f".staging-{os.getpid()}-abc"  # a run still going on
    live.mkdir()
    run_step(GROWTH, "inference.json", growth)
    assert not stale.exists() and not older.exists() and "left by an interrupted run" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "out")) == [live.name, "Phantom_000", "summary.csv"]


# ---- 4. range checks --------------------------------------------------------------------------------------------

def _runner(config: str) -> dict:
    content = ConfigParser.load_config_file(config)
    return next(v for v in content.values() if isinstance(v, dict) and "medi2i.workflows" in str(v.get("_target_")))


@pytest.mark.parametrize("config", sorted(glob.glob(os.path.join(ROOT, "bundles", "*", "configs", "inference*.json"))
                                          + glob.glob(os.path.join(ROOT, "bundles", "*", "configs", "evaluate*.json"))))
def test_runner_checks_every_setting_with_a_rule(config):
    """Every top-level setting that has a range (or is a flag) reaches the runner's check."""
    content = ConfigParser.load_config_file(config)
    assert content.get("overwrite") is False and _runner(config)["overwrite"] == "@overwrite"
    assert _runner(config)["settings"] == {name: f"@{name}" for name in content if name in RULES}


def test_contrast_settings_out_of_range(capsys, tiny_run, tmp_path):
    args = tiny_overrides(CONTRAST, tiny_run(CONTRAST), output_dir=str(tmp_path / "out"))
    for override, message in (({"guidance_weight": float("inf")}, "guidance_weight: must be a finite number >= 0, got inf"),
                              ({"num_inference_steps": 0}, "num_inference_steps: must be an integer >= 1"),
                              ({"sampler": "ddim", "num_inference_steps": 0}, "num_inference_steps: must be an integer >= 1"),
                              ({"eta": float("nan")}, "eta: must be a finite number >= 0"),
                              ({"pixdim": 0}, "pixdim: must be a finite number > 0"),
                              ({"batch_size": 0}, "batch_size: must be an integer >= 1, got 0"),
                              ({"seed": -1}, "seed: must be an integer >= 0")):
        expect_input_error(capsys, CONTRAST, {**args, **override}, message)
    expect_input_error(capsys, CONTRAST, {**args, "guidance_weights": [0.0, float("inf")], "output_dir": str(tmp_path / "eval")},
                       "guidance_weights: must be a finite number >= 0, got inf", "evaluate.json")
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "eval")


def test_aldm_settings_out_of_range(capsys, tiny_run, tmp_path):
    args = tiny_overrides(ALDM, tiny_run(ALDM), output_dir=str(tmp_path / "out"))
    for override, message in (({"num_inference_steps": 0}, "num_inference_steps: must be an integer >= 1"),
                              ({"source_noise_level": 5000}, "source_noise_level: must be an integer >= 1 and <= 1000 (num_train_timesteps), got 5000"),
                              ({"source_noise_level": -1}, "source_noise_level: must be an integer >= 1"),
                              ({"start_noise_level": 5000}, "start_noise_level: must be an integer >= 1 and <= 1000 (num_train_timesteps), got 5000"),
                              ({"latent_scale": 0}, "latent_scale: must be a finite number > 0")):
        expect_input_error(capsys, ALDM, {**args, **override}, message)
    expect_input_error(capsys, ALDM, {**args, "source_noise_level": 5000}, "source_noise_level: must be", "evaluate.json")
    expect_input_error(capsys, ALDM, {**args, "start_noise_level": 0}, "start_noise_level: must be an integer >= 1", "evaluate.json")
    assert not os.path.exists(tmp_path / "out")


def test_growth_settings_out_of_range(capsys, growth):
    for override, message in (({"gradient_scale": float("inf")}, "gradient_scale: must be a finite number, got inf"),
                              ({"fixed_scales": [1.0, float("nan")]}, "fixed_scales: must be a finite number, got nan"),
                              ({"tumour_flair_ratio": -1}, "tumour_flair_ratio: must be a finite number > 0"),
                              ({"batch_size": 0}, "batch_size: must be an integer >= 1")):
        expect_input_error(capsys, GROWTH, {**growth, **override}, message)
    assert not os.path.exists(growth["output_dir"])


def test_restoration_settings_out_of_range(capsys, tiny_run, tmp_path):
    args = tiny_overrides(DENOISE, tiny_run(DENOISE), output_dir=str(tmp_path / "out"))
    for override, message in (({"noise_std": [-0.1, 0.2]}, "noise_std: must be a finite number >= 0, got -0.1"),
                              ({"salt_pepper": [0.01, 2]}, "salt_pepper: must be a finite number >= 0 and <= 1, got 2"),
                              ({"sampling_method": "ddim", "ddim_eta": float("inf")}, "ddim_eta: must be a finite number >= 0")):
        expect_input_error(capsys, DENOISE, {**args, **override}, message)
    assert not os.path.exists(tmp_path / "out")


# ---- 5. one-line errors for evaluation inputs ---------------------------------------------------------------------

def test_contrast_evaluate_refuses_nan_and_unreadable_real_slices(capsys, tiny_run, tmp_path):
    run = tiny_run(CONTRAST)
    datalist = json.load(open(os.path.join(run["dataset_dir"], "datalist.json")))
    for item in datalist["test"]:
        item["image"] = os.path.join(run["dataset_dir"], item["image"])
    nan = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(np.full((16, 16, 1, 1), np.nan, np.float32), np.eye(4)), str(nan))
    text = tmp_path / "text.nii.gz"
    text.write_text("not an image")
    for bad, message in ((nan, f"{nan}: contains 256 non-finite voxel(s)"), (text, f"{text}: cannot be read as an image")):
        datalist["test"][0]["image"] = str(bad)
        path = tmp_path / "datalist.json"
        path.write_text(json.dumps(datalist))
        expect_input_error(capsys, CONTRAST, tiny_overrides(CONTRAST, run, datalist=str(path), output_dir=str(tmp_path / "eval")),
                           message, "evaluate.json")
    text.write_text("not TorchScript")
    expect_input_error(capsys, CONTRAST, tiny_overrides(CONTRAST, run, fid_weights=str(text), output_dir=str(tmp_path / "eval")),
                       f"{text}: FID feature network (TorchScript) cannot be read", "evaluate.json")
    path.write_text('{"test": [')  # truncated
    expect_input_error(capsys, CONTRAST, tiny_overrides(CONTRAST, run, datalist=str(path), output_dir=str(tmp_path / "eval")),
                       f"{path}: datalist is not valid JSON", "evaluate.json")


def test_evaluate_refuses_text_and_truncated_outputs(capsys, growth, tmp_path):
    run_step(GROWTH, "inference.json", growth)
    evaluate = {**growth, "inference_dir": growth["output_dir"], "output_dir": str(tmp_path / "eval")}
    output = tmp_path / "out" / "Phantom_000" / "grow.nii.gz"
    data = output.read_bytes()
    output.write_bytes(data[: len(data) // 2])
    expect_input_error(capsys, GROWTH, evaluate, f"{output}: cannot be read as an image", "evaluate.json")
    output.write_text("a text file")
    expect_input_error(capsys, GROWTH, evaluate, f"{output}: cannot be read as an image", "evaluate.json")
    (tmp_path / "out" / "summary.csv").write_text("just some text\nmore text\n")
    expect_input_error(capsys, GROWTH, evaluate, "summary.csv: is not an inference summary", "evaluate.json")
    assert not os.path.exists(tmp_path / "eval")


def test_rgba_png_is_not_four_modalities(capsys, growth, tmp_path):
    rgba = tmp_path / "slice.png"
    Image.fromarray(np.random.default_rng(0).integers(1, 255, (32, 32, 4), dtype=np.uint8), "RGBA").save(rgba)
    expect_input_error(capsys, GROWTH, {**growth, "inputs": str(rgba)}, f"{rgba}: expected 4 channels (t1, t1ce, t2, flair), found 1")


def test_shape_mismatch_names_the_odd_file(capsys, growth, tmp_path):
    case = tmp_path / "data" / "Phantom_000"
    t2 = case / "Phantom_000_t2.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((16, 16, 8), np.float32), np.eye(4)), str(t2))
    expect_input_error(capsys, GROWTH, growth, f"{t2}: shape (16, 16, 8) differs from the first modality's (32, 32, 8)")
    shutil.rmtree(case)


def test_speed_flags_given_as_text_are_parsed_strictly():
    """use_flash_attention, gradient_checkpointing, channels_last, compile and tf32 go into MONAI constructors and
    speed helpers: 'false' from the command line must be False there, and 'maybe' a one-line error."""
    from medi2i.errors import InputError

    config = os.path.join(ROOT, "bundles", "brats_mri_tumor_growth_regression_guidance", "configs", "inference.json")

    def network(value):
        parser = ConfigParser()
        parser.read_config(config)
        parser["use_flash_attention"] = value
        return parser.get_parsed_content("network_def")

    flags = lambda net: {m.use_flash_attention for m in net.modules() if hasattr(m, "use_flash_attention")}  # noqa: E731
    assert flags(network("false")) == {False} and flags(network("TRUE")) == {True}
    with pytest.raises(Exception) as info:
        network("maybe")
    cause = info.value
    while cause.__cause__ is not None and not isinstance(cause, InputError):
        cause = cause.__cause__
    assert isinstance(cause, InputError) and "expected true or false" in str(cause)
    for path in glob.glob(os.path.join(ROOT, "bundles", "*", "configs", "*.json")):
        text = open(path).read()
        for name in ("use_flash_attention", "gradient_checkpointing", "channels_last", "compile"):
            assert f'"@{name}"' not in text, f"{path}: {name} reaches its consumer unparsed"


def test_inpainting_default_inputs_errors_are_one_line(capsys, tmp_path):
    """The tumour-inpainting default inputs (healthy slices of the datalist) are found inside the run: a missing
    datalist or max_inputs -1 is one error line, not a traceback from config parsing."""
    bundle = os.path.join(ROOT, "bundles", "brats_mri_tumor_inpainting_segmentation_guidance")
    base = {"bundle_root": str(tmp_path), "output_dir": str(tmp_path / "out")}
    expect_input_error(capsys, bundle, {**base, "dataset_dir": str(tmp_path / "nowhere")}, "datalist.json: datalist not found")
    expect_input_error(capsys, bundle, {**base, "max_inputs": -1}, "max_inputs")


def test_demo_recipes_can_be_run_again_into_the_same_folder():
    """Output folders are refused unless overwrite: every inference/evaluation step of a demo or real recipe sets it,
    so the README's `python tools/demo.py` (and --real) works a second time in the same demo_output."""
    for path in glob.glob(os.path.join(ROOT, "bundles", "*", "configs", "demo.json")):
        with open(path) as f:
            recipe = json.load(f)["demo"]
        for spec in (recipe, recipe.get("real", {})):
            for step in spec.get("run", []):
                assert step.get("overrides", {}).get("overwrite") is True, f"{path}: {step['config']}"
