"""The tumour-growth bundle through monai.bundle: tiny train -> infer -> evaluate, resume, behaviour on phantoms
with the demo weights, network consistency between configs, and bad input."""

import csv
import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.transforms import LoadImage

from conftest import GROWTH, ROOT, expect_cli_error, expect_input_error
from medi2i.data import load_case, write_phantom_dataset
from medi2i.data.slices import axial_slice
from medi2i.networks.encoder import AttentionPool
from medi2i.recipes import load_recipe, run_step
from medi2i.verify import tiny_overrides
from medi2i.workflows import growth_targets

CONFIGS = os.path.join(GROWTH, "configs")


def test_tiny_train_infer_evaluate(tiny_growth_run):
    out = tiny_growth_run["output_dir"]
    for path in ("models/model.pt", "models/regressor.pt", "runs/diffusion/checkpoint_iteration=2.pt",
                 "runs/regressor/checkpoint_iteration=2.pt"):
        assert os.path.isfile(os.path.join(out, path)), path
    with open(os.path.join(out, "outputs", "summary.csv")) as f:
        rows = list(csv.DictReader(f))
    datalist = json.load(open(os.path.join(tiny_growth_run["dataset_dir"], "datalist.json")))
    cases = datalist["test_cases"]
    assert {r["target"] for r in rows} == {"desired_0", "desired_0.2", "grow"} and len(rows) == 3 * len(cases)
    for case in cases:
        folder = os.path.join(out, "outputs", case["case"])
        assert {"input.nii.gz", "label.nii.gz", "grow.nii.gz", "grow_difference.nii.gz", "panel.png"} <= set(os.listdir(folder))
        volume, _ = load_case({"image": [os.path.join(tiny_growth_run["dataset_dir"], p) for p in case["image"]]})
        slice_index = int(next(r["slice"] for r in rows if r["case"] == case["case"]))
        written = nib.load(os.path.join(folder, "grow.nii.gz"))
        assert written.shape == (32, 32, 1, 4)
        assert np.allclose(written.affine, axial_slice(volume, slice_index).affine.numpy())  # the input's affine
    metrics = json.load(open(os.path.join(out, "eval", "metrics.json")))
    assert [r["target"] for r in metrics["rows"]] == ["input", "desired_0", "desired_0.2", "grow"]
    assert all(np.isfinite(r["psnr_outside_tumour"]) for r in metrics["rows"][1:])
    assert os.path.isfile(os.path.join(out, "eval", "requested_vs_achieved.png"))
    assert os.path.isfile(os.path.join(out, "eval", "metrics.md"))


def test_training_resumes_from_the_last_checkpoint(tiny_growth_run, tmp_path):
    overrides = tiny_overrides(GROWTH, tiny_growth_run, bundle_root=str(tmp_path), ckpt_dir=str(tmp_path / "models"),
                                epoch_length=2, val_interval=1)
    run_step(GROWTH, "train_diffusion.json", {**overrides, "max_epochs": 1})
    run_step(GROWTH, "train_diffusion.json", {**overrides, "max_epochs": 2})
    state = torch.load(tmp_path / "runs" / "diffusion" / "checkpoint_iteration=4.pt", weights_only=False)
    assert state["trainer"]["iteration"] == 4  # 2 epochs x 2 iterations: continued, not restarted


def _parsed(config, key, **overrides):
    parser = ConfigParser()
    parser.read_config(os.path.join(CONFIGS, config))
    parser.update(overrides)
    parser.parse()
    return parser.get_parsed_content(key)


def test_configs_describe_the_same_networks():
    small = {"image_size": 32, "norm_num_groups": 8, "ddpm_channels": [8, 16], "ddpm_attention_levels": [False, True],
             "regressor_channels": [8, 16], "regressor_attention_levels": [False, True], "regressor_num_head_channels": 8}
    ddpm = [_parsed(c, "network_def", **small).state_dict() for c in ("train_diffusion.json", "inference.json")]
    regressor_nets = [_parsed("train_regressor.json", "network_def", **small), _parsed("inference.json", "regressor_def", **small),
                      _parsed("evaluate.json", "regressor_def", **small)]
    assert all(net.input_norm for net in regressor_nets)  # trained and used on standardised channels alike
    regressors = [net.state_dict() for net in regressor_nets]
    for group in (ddpm, regressors):
        shapes = [{k: v.shape for k, v in sd.items()} for sd in group]
        assert all(s == shapes[0] for s in shapes[1:])
    for config in ("train_diffusion.json", "train_regressor.json", "inference.json", "evaluate.json"):
        assert _parsed(config, "image_size") == 256  # paper size by default


def test_the_real_recipe_trains_its_regressor_on_the_noise_levels_the_guidance_uses():
    """The paper's regressor sees t in [0, T) (the default); the real recipe trains it on t < L, the levels
    guidance queries from the encoding depth L down, and guides with the paper's c = 1000."""
    prepare = "train#trainer#prepare_batch"
    assert _parsed("train_regressor.json", prepare).max_timestep == 1000
    overrides = load_recipe(GROWTH, real=True)[1]["overrides"]
    assert _parsed("train_regressor.json", prepare, **overrides).max_timestep == _parsed("inference.json", "noise_level") == 400
    assert overrides["gradient_scale"] == _parsed("inference.json", "gradient_scale") == 1000


def test_paper_size_networks():
    ddpm = _parsed("train_diffusion.json", "network_def")
    n = sum(p.numel() for p in ddpm.parameters())
    assert n == pytest.approx(113_681_160, rel=1e-4)  # the paper's count (113,680,136 in MONAI)
    assert ddpm.out_channels == 8  # learned variance (hybrid loss)
    regressor = _parsed("train_regressor.json", "network_def")
    assert isinstance(regressor.out[-1], AttentionPool)  # guided-diffusion's attention-pooled head
    # paper: 5,452,833; MONAI's encoder has no middle block and no residual up/down-sampling blocks
    assert sum(p.numel() for p in regressor.parameters()) == pytest.approx(5_452_833, rel=0.25)


@pytest.fixture(scope="module")
def heldout_phantoms(tmp_path_factory):
    """Four tumour phantoms at demo size that the demo networks never saw (another seed)."""
    root = tmp_path_factory.mktemp("heldout")
    write_phantom_dataset(str(root), num_cases=4, shape=(64, 64, 32), seed=123, healthy_fraction=0.0)
    return str(root)


def test_demo_weights_grow_and_shrink_tumours(heldout_phantoms, tmp_path):
    weights = os.path.join(GROWTH, "models", "demo")
    if not os.path.isfile(os.path.join(weights, "model.pt")):
        pytest.skip("demo weights not present (reproduce them with: python tools/demo.py --retrain)")
    overlay, _ = load_recipe(GROWTH)  # the demo's gradient scale and fixed s_t
    grow, shrink = (t["name"] for t in growth_targets([], overlay["fixed_scales"]))
    common = {"bundle_root": str(tmp_path), "ckpt_dir": weights, "inputs": heldout_phantoms}
    run_step(GROWTH, "inference.json", {**common, "desired_values": [0.0, 0.25]})
    run_step(GROWTH, "evaluate.json", common)
    rows = {r["target"]: r for r in json.load(open(tmp_path / "eval" / "metrics.json"))["rows"]}
    for key in ("regressor_output", "measured_size_output"):
        assert rows["desired_0.25"][key] > rows["desired_0"][key] + 0.03, key
        assert rows[grow][key] > rows["input"][key] > rows[shrink][key], key
    assert rows["desired_0.25"]["regressor_error"] < abs(rows["input"]["regressor_output"] - 0.25)
    # away from the tumour little changes; growing and shrinking also change the tumour's surroundings
    for target, min_psnr in (("desired_0", 25), ("desired_0.25", 25), (grow, 21), (shrink, 21)):
        assert rows[target]["psnr_outside_tumour"] > min_psnr and rows[target]["ssim_outside_tumour"] > 0.8, target
    per_case = json.load(open(tmp_path / "eval" / "per_case.json"))["rows"]
    assert all(r["psnr_outside_tumour"] > 20 for r in per_case)


# ---- bad input: one line on stderr, exit status 2, nothing written -------------------------------------------

@pytest.fixture
def infer_args(tiny_growth_run, tmp_path):
    return tiny_overrides(GROWTH, tiny_growth_run, output_dir=str(tmp_path / "out"))


def _phantom_case(tmp_path, name="case"):
    write_phantom_dataset(str(tmp_path / name), num_cases=1, shape=(32, 32, 8), healthy_fraction=0.0)
    return tmp_path / name / "Phantom_000"


def test_bad_input_missing_modality(capsys, infer_args, tmp_path):
    case = _phantom_case(tmp_path)
    os.remove(case / "Phantom_000_t2.nii.gz")
    expect_input_error(capsys, GROWTH, {**infer_args, "inputs": str(case)}, "case is missing modality t2")
    assert not os.path.exists(infer_args["output_dir"])


def test_bad_input_channels_shape_and_values(capsys, infer_args, tmp_path):
    nib.save(nib.Nifti1Image(np.ones((32, 32, 1, 3), np.float32), np.eye(4)), str(tmp_path / "three.nii.gz"))
    expect_input_error(capsys, GROWTH, {**infer_args, "inputs": str(tmp_path / "three.nii.gz")}, "three.nii.gz: expected 4 channels")
    arr = np.random.rand(32, 32, 1, 4).astype(np.float32)
    arr[3, 3, 0, 1] = np.inf
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(tmp_path / "inf.nii.gz"))
    expect_input_error(capsys, GROWTH, {**infer_args, "inputs": str(tmp_path / "inf.nii.gz")}, "inf.nii.gz: contains 1 non-finite voxel")
    assert not os.path.exists(infer_args["output_dir"])


def test_larger_slice_is_resampled_and_written_on_its_own_grid(infer_args, tmp_path):
    """A 72x60 slice with a 32x32 network: padded to 96x96, area-downsampled by 3, and every output written back
    at 72x60 with the input's affine; where the output equals the network input, the input's own detail is kept."""
    from medi2i.recipes import run_step

    arr = np.random.default_rng(0).random((72, 60, 1, 4)).astype(np.float32) * 0.5 + 0.25
    affine = np.diag([0.8, 0.9, 3.0, 1.0])
    affine[:3, 3] = [5.0, -7.0, 11.0]
    nib.save(nib.Nifti1Image(arr, affine), str(tmp_path / "big.nii.gz"))
    run_step(GROWTH, "inference.json", {**infer_args, "inputs": str(tmp_path / "big.nii.gz")})
    folder = os.path.join(infer_args["output_dir"], "big")
    written = nib.load(os.path.join(folder, "input.nii.gz"))
    assert written.shape[:2] == (72, 60) and np.allclose(written.affine, affine)
    np.testing.assert_allclose(np.asarray(written.dataobj)[..., 0, :], arr[..., 0, :], atol=1e-6)
    for name in ("desired_0", "desired_0.2", "grow", "grow_difference"):
        out = nib.load(os.path.join(folder, f"{name}.nii.gz"))
        assert out.shape[:2] == (72, 60) and np.allclose(out.affine, affine), name
    # evaluation gives the regressor the network grid again: R(input) as in inference's summary
    eval_dir = str(tmp_path / "eval")
    run_step(GROWTH, "evaluate.json", {**infer_args, "inference_dir": infer_args["output_dir"], "output_dir": eval_dir})
    with open(os.path.join(eval_dir, "per_case.json")) as f:
        per_case = json.load(f)["rows"]
    with open(os.path.join(infer_args["output_dir"], "summary.csv")) as f:
        r_inference = float(next(csv.DictReader(f))["regressor_input"])
    assert abs(per_case[0]["regressor_input"] - r_inference) < 1e-4


def test_bad_settings(capsys, infer_args, tmp_path):
    case = str(_phantom_case(tmp_path))
    expect_input_error(capsys, GROWTH, {**infer_args, "inputs": case, "desired_values": [0.1, 1.5]},
                       "desired_values: desired relative tumour size 1.5 is outside [0, 1]")
    expect_input_error(capsys, GROWTH, {**infer_args, "inputs": case, "noise_level": 1001}, "L = 1001 must be in 1..T = 1000")
    assert not os.path.exists(infer_args["output_dir"])


def test_bad_checkpoints(capsys, infer_args, tmp_path):
    case = str(_phantom_case(tmp_path))
    expect_input_error(capsys, GROWTH, {**infer_args, "inputs": case, "ckpt_dir": str(tmp_path / "empty")},
                       "model.pt: diffusion model checkpoint not found")
    expect_input_error(capsys, GROWTH, {**infer_args, "inputs": case, "ddpm_channels": [16, 16, 16]},
                       "model.pt: diffusion model checkpoint does not match the configured network")
    expect_input_error(capsys, GROWTH, {"bundle_root": infer_args["bundle_root"], "ckpt_dir": str(tmp_path / "empty"),
                                        "inference_dir": str(tmp_path / "none")}, "summary.csv: inference summary", "evaluate.json")
    assert not os.path.exists(infer_args["output_dir"])


def test_existing_outputs_are_not_overwritten(capsys, infer_args, tmp_path):
    case = _phantom_case(tmp_path)
    target = tmp_path / "out" / "Phantom_000"
    target.mkdir(parents=True)
    (target / "keep.txt").write_text("user data")
    expect_input_error(capsys, GROWTH, {**infer_args, "inputs": str(case)}, "output folder exists and is not empty")
    assert os.listdir(target) == ["keep.txt"] and sorted(os.listdir(tmp_path / "out")) == ["Phantom_000"]


def test_command_line_error_is_one_line_with_nonzero_exit(tmp_path):
    expect_cli_error([os.path.join(CONFIGS, "inference.json")], os.path.join(CONFIGS, "metadata.json"), tmp_path,
                     str(tmp_path / "missing_case"), f"{tmp_path / 'missing_case'}: no such file or folder")


def test_fixed_threshold_measure_is_not_fooled_by_a_globally_brighter_output():
    """The scale-free tumour size reads a uniformly brightened slice as the same tumour; with the input's median as a
    fixed threshold the brighter slice reads as more tumour, and growth_effects reports both measures' shares."""
    from medi2i.metrics import TumourSize
    from medi2i.workflows.growth_evaluation import growth_effects

    image = torch.full((1, 4, 32, 32), 0.4)
    image[:, 3, 10:16, 10:16] = 0.9  # FLAIR-bright tumour: 36 of 1024 brain pixels
    brain, measure = torch.ones(1, 1, 32, 32), TumourSize()
    brighter = image * 1.5  # same tumour, whole brain brighter: normal tissue at 0.6 > 1.4 x 0.4
    (own,), _ = measure(brighter, brain)
    (fixed,), _ = measure(brighter, brain, reference=image)
    (size_in,), _ = measure(image, brain)
    assert own == size_in == pytest.approx(36 / 1024) and fixed == 1.0
    nan = float("nan")
    row = {"case": "a", "desired_value": nan, "measured_size_input": float(size_in), "regressor_input": 0.1,
           "true_size_input": nan, "psnr_outside_tumour": 30.0}
    per_case = [{**row, "target": "shrink", "measured_size_output": float(size_in) / 2, "measured_size_output_fixed_threshold": 1.0}]
    effects = growth_effects(per_case)
    assert effects["shrink_share"] == 1.0 and effects["shrink_share_fixed_threshold"] == 0.0


def test_segmenter_measure_is_taken_inside_the_brain_and_compared_with_the_segmented_input(capsys, tmp_path):
    """SegmentedTumourSize counts S(x, 0) > 0.5 inside the brain only; growth_effects' ``_segmenter`` shares compare
    the output with the segmenter's size of the input (not the FLAIR measure's). The inpainting bundle's segmenter
    loads through bundle_network with its real weights; a folder that is not a bundle is a one-line error."""
    from medi2i.metrics import SegmentedTumourSize
    from medi2i.serving import bundle_network
    from medi2i.workflows.growth_evaluation import growth_effects

    class Bright(torch.nn.Module):  # "segments" FLAIR > 0.7
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(100.0))

        def forward(self, x, timesteps):
            assert (timesteps == 0).all()
            return self.scale * (x[:, 3:4] - 0.7)

    image = torch.full((1, 4, 32, 32), 0.4)
    image[:, 3, 10:16, 10:20] = 0.9
    brain = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    brain[..., :, :15] = True  # half of the bright block lies outside the brain
    (size,), masks = SegmentedTumourSize(Bright())(image, brain)
    assert size == pytest.approx(30 / (32 * 15)) and not (masks & ~brain).any()
    nan = float("nan")
    row = {"case": "a", "desired_value": nan, "regressor_input": 0.1, "true_size_input": nan,
           "psnr_outside_tumour": 30.0, "measured_size_input": 0.1, "measured_size_output": 0.05,
           "segmented_size_input": 0.02}
    effects = growth_effects([{**row, "target": "shrink", "segmented_size_output": 0.03}])
    assert effects["shrink_share"] == 1.0 and effects["shrink_share_segmenter"] == 0.0
    inpainting = os.path.join(ROOT, "bundles", "brats_mri_tumor_inpainting_segmentation_guidance")
    segmenter = bundle_network(inpainting, "segmenter_def", "models/real/segmenter.pt")
    saved = torch.load(os.path.join(inpainting, "models", "real", "segmenter.pt"), map_location="cpu")
    loaded = segmenter.state_dict()
    assert not segmenter.training and loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[name].float(), value.float()) for name, value in saved.items())
    expect_input_error(capsys, GROWTH, {"tumour_segmenter_bundle": ROOT, "inference_dir": str(tmp_path),
                                        "output_dir": str(tmp_path / "eval")}, "not a bundle", config="evaluate.json")


def test_growth_effects_shares_per_slice():
    from medi2i.workflows.growth_evaluation import growth_effects

    nan = float("nan")

    def rows(case, sizes, grow, shrink, r_in=0.1, true=0.12, psnr=30.0):
        out = [{"case": case, "target": f"desired_{i}", "desired_value": i, "measured_size_output": s} for i, s in sizes]
        out += [{"case": case, "target": "grow", "desired_value": nan, "measured_size_output": grow},
                {"case": case, "target": "shrink", "desired_value": nan, "measured_size_output": shrink}]
        return [{**r, "measured_size_input": 0.1, "regressor_input": r_in, "true_size_input": true, "psnr_outside_tumour": psnr} for r in out]

    per_case = rows("a", [(0.0, 0.0), (0.1, 0.0), (0.2, 0.15)], grow=0.2, shrink=0.05)  # follows every request
    per_case += rows("b", [(0.0, 0.05), (0.1, 0.04), (0.2, 0.2)], grow=0.1, shrink=0.05, r_in=0.2, true=nan, psnr=25.0)
    per_case += rows("c", [(0.0, 0.1), (0.1, 0.1), (0.2, 0.1)], grow=0.3, shrink=0.2)  # flat: not monotonic
    effects = growth_effects(per_case)
    assert "grow_share_fixed_threshold" not in effects  # rows without the second measure
    assert effects["slices"] == 3 and effects["monotonic_share"] == pytest.approx(1 / 3)
    assert effects["grow_share"] == pytest.approx(2 / 3) and effects["shrink_share"] == pytest.approx(2 / 3)
    assert effects["labelled_slices"] == 2 and effects["regressor_mae"] == pytest.approx(0.02)
    assert effects["psnr_outside_tumour_min"] == 25.0
