"""Med-cDiff bundles (super-resolution, denoising, inpainting): degradations, the conditional sampler against an
analytic model, readers on the real samples, and each bundle's tiny recipe through monai.bundle."""

import csv
import glob
import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.networks.schedulers import DDPMScheduler
from monai.transforms import LoadImage

from conftest import ROOT, shared
from medi2i.data import DownUpSampled, GaussianSaltPepperNoised, InpaintingMaskd, build_image_datalist, find_radiographs, find_volumes, load_image
from medi2i.data.degradations import downsampled_size, upsample
from medi2i.diffusion import ConditionalDiffusionInferer, ConditionalSampler, GaussianConditionalEpsilon
from medi2i.recipes import load_recipe
from medi2i import verify
from medi2i.verify import tiny_overrides
from medi2i.metrics.restoration import nmse_in_mask, psnr, psnr_in_mask
from medi2i.workflows import BiharmonicFill, NearestFill

BUNDLES = {name: os.path.join(ROOT, "bundles", name) for name in
           ("prostate_mri_super_resolution_cddpm", "chest_xray_denoising_cddpm", "prostate_mri_inpainting_cddpm")}
BASELINES = {"prostate_mri_super_resolution_cddpm": ["bicubic", "bilinear"],
             "chest_xray_denoising_cddpm": ["noisy input", "median 3x3", "non-local means"],
             "prostate_mri_inpainting_cddpm": ["biharmonic", "nearest"]}


def _image(size=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (F.avg_pool2d(torch.rand(1, 1, size, size, generator=g) * 2 - 1, 5, 1, 2)[0] * 0.8)


# --- degradations --------------------------------------------------------------------------------------------

def test_x4_downsample_halves_twice():
    x = _image()
    assert downsampled_size(128, 4) == 32 and downsampled_size(128, 2 * 2**0.5) == 45
    twice = F.interpolate(F.interpolate(x[None], scale_factor=0.5, mode="area"), scale_factor=0.5, mode="area")
    once = F.interpolate(x[None], size=(32, 32), mode="area")
    assert torch.allclose(once, twice, atol=1e-6)
    blocky = torch.repeat_interleave(torch.repeat_interleave(once[0], 4, 1), 4, 2)  # constant on 4x4 blocks
    out = DownUpSampled("image", factor=4, up_mode="nearest")({"image": blocky})
    assert torch.allclose(out["condition"], blocky.clamp(-1, 1), atol=1e-6) and out["condition"].shape == (1, 128, 128)
    degraded = DownUpSampled("image", factor=4)({"image": x})["condition"]
    assert torch.allclose(degraded, upsample(once[0], (128, 128)), atol=1e-6)  # 128 -> 32 (area) -> 128 (bicubic)
    assert not torch.allclose(degraded, x, atol=0.05)


def test_salt_and_pepper_hits_the_requested_fraction():
    x = torch.zeros(1, 256, 256)
    y = GaussianSaltPepperNoised("image", gaussian_std=0.1, salt_pepper=0.1, fixed_seed=3)({"image": x})["condition"]
    hit = y.abs() == 1
    assert hit.float().mean().item() == pytest.approx(0.1, abs=0.005)
    assert (y[hit] > 0).float().mean().item() == pytest.approx(0.5, abs=0.03)  # half salt, half pepper
    assert y[~hit].std().item() == pytest.approx(0.1, rel=0.03)


@pytest.mark.parametrize("shape", ["box", "stroke"])
def test_masks_cover_the_requested_area_and_are_fixed_by_seed(shape):
    for area in (0.05, 0.2):
        masker = InpaintingMaskd("image", area=area, shapes=[shape], fixed_seed=7)
        covered = [masker({"image": _image(seed=s)})["mask"].mean().item() for s in range(4)]
        assert all(area - 0.01 <= c <= area + (0.03 if shape == "stroke" else 0.01) for c in covered), covered
    x = _image()
    x.meta = {"filename_or_obj": "a.nii.gz"}
    masker = InpaintingMaskd("image", area=0.2, fixed_seed=7)
    first, again = masker({"image": x}), masker({"image": x})
    assert torch.equal(first["mask"], again["mask"])  # same file -> same test mask
    assert torch.equal(first["condition"][0], x[0] * (1 - first["mask"][0]))
    named = {path: masker({"image": MetaTensor(_image(), meta={"filename_or_obj": path})})["mask"]
             for path in ("/data/a/case1.nii.gz", "/data/a/case2.nii.gz", "/copy/b/case1.nii.gz")}
    assert not torch.equal(named["/data/a/case1.nii.gz"], named["/data/a/case2.nii.gz"])  # seeded by the file name
    assert torch.equal(named["/data/a/case1.nii.gz"], named["/copy/b/case1.nii.gz"])  # not by its folder


def test_classical_fills_keep_known_pixels_and_interpolate_smooth_images():
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    x = (0.5 * xx + 0.3 * yy)[None]  # linear: the biharmonic fill is exact
    mask = torch.zeros(1, 32, 32)
    mask[:, 10:20, 8:22] = 1
    condition = torch.cat([x * (1 - mask), mask])[None]
    assert torch.allclose(BiharmonicFill()(condition)[0], x, atol=1e-4)
    nearest = NearestFill()(condition)[0]
    assert torch.equal(nearest[mask == 0], x[mask == 0]) and (nearest - x).abs().max() < 0.2


def test_metrics_in_the_hole_ignore_the_known_pixels():
    target = torch.zeros(2, 1, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    restored = target.clone()
    restored[0][mask[0] > 0] = 0.2  # 0.1 off in [0, 1] units inside the hole: 20 dB
    restored[1][mask[1] == 0] = 0.8  # wrong only outside the hole: perfect inside
    hole = psnr_in_mask(restored, target, mask)
    assert hole[0].item() == pytest.approx(20.0, abs=1e-4) and hole[1] > 100
    assert nmse_in_mask(restored, target, mask)[1] == 0 and psnr(restored, target)[1] < 20


# --- the conditional sampler --------------------------------------------------------------------------------

@pytest.mark.parametrize("method,steps,tol_std", [("ancestral", 2000, 0.02), ("ddim", 250, 0.02)])
def test_conditional_sampler_reproduces_the_analytic_posterior(method, steps, tol_std):
    """x_0 | y ~ N(y, 0.2^2): the exact eps(x_t, y, t) must give samples with mean y and std 0.2."""
    scheduler = DDPMScheduler(2000, "linear_beta", beta_start=1e-4, beta_end=0.02, variance_type="fixed_large", clip_sample=False)
    model = GaussianConditionalEpsilon(scheduler, std=0.2)
    y = torch.linspace(-0.8, 0.8, 16).view(1, 1, 4, 4).repeat(512, 1, 1, 1)
    sampler = ConditionalSampler(scheduler, method, steps, clip=False, clip_denoised=False)
    x = ConditionalDiffusionInferer(sampler, seed=1)(y, model)
    assert (x.mean(0) - y[0]).abs().max() < 0.04
    assert x.std(0).mean().item() == pytest.approx(0.2, abs=tol_std)
    assert sampler.network_evaluations == 512 * steps
    assert torch.equal(x, ConditionalDiffusionInferer(sampler, seed=1)(y, model))  # seeded


def test_inpainting_inferer_replaces_only_the_masked_region():
    scheduler = DDPMScheduler(2000, "linear_beta", beta_start=1e-4, beta_end=0.02, variance_type="fixed_large")
    model = GaussianConditionalEpsilon(scheduler, std=0.2)
    x = _image(16)
    mask = torch.zeros(1, 16, 16)
    mask[:, 4:10, 5:12] = 1
    condition = torch.cat([x * (1 - mask), mask])[None]
    out = ConditionalDiffusionInferer(ConditionalSampler(scheduler, "ddim", 50), keep_known=True)(condition, lambda z, timesteps: model(torch.cat([z, z * 0], 1), timesteps))
    assert torch.equal(out[0][mask == 0], x[mask == 0]) and not torch.equal(out[0][mask == 1], x[mask == 1] * 0)


# --- readers on the real samples -----------------------------------------------------------------------------

def test_prostatex_nifti_and_dicom_read_alike(tmp_path):
    (nifti_case,) = find_volumes(shared("prostatex"))  # the DICOM series beside it is the same image: one case
    (dicom_case,) = find_volumes(shared("prostatex", "ProstateX-0000", "dicom_t2_tse_tra"))
    nifti, dicom = load_image(nifti_case), load_image(dicom_case)
    assert nifti.shape == dicom.shape == (1, 384, 384, 19) and torch.equal(nifti, dicom)
    path = build_image_datalist(shared("prostatex"), str(tmp_path), "volumes", 128, 0.0, 0.0, seed=0)
    datalist = json.load(open(path))
    assert len(datalist["training"]) == 19 and not datalist["validation"] and not datalist["test"]  # read once
    sl = LoadImage(image_only=True, ensure_channel_first=True)(os.path.join(tmp_path, datalist["training"][0]["image"]))
    assert sl.shape == (1, 128, 128, 1) and -1.0 <= sl.min() and sl.max() <= 1.0


def test_nih_and_kermany_radiograph_layouts(tmp_path):
    items = find_radiographs(shared("chest_xray_nih"))
    assert len(items) == 10 and items[0]["patient"] == items[0]["case"][:8]
    from PIL import Image

    for split, label in (("train", "NORMAL"), ("test", "PNEUMONIA")):
        os.makedirs(tmp_path / split / label)
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / split / label / "person1_virus_1.jpeg")
    kermany = find_radiographs(str(tmp_path))
    assert {(k["split"], k["label_name"], k["patient"]) for k in kermany} == {("train", "NORMAL", "person1"), ("test", "PNEUMONIA", "person1")}
    assert load_image(kermany[0]).shape == (1, 30, 20)  # RGB averaged to grey


# --- the bundles through monai.bundle ------------------------------------------------------------------------

@pytest.fixture(scope="session", params=list(BUNDLES))
def tiny_cddpm_run(request, tiny_run):
    """Each bundle's tiny recipe: phantoms -> train -> infer (DDIM) -> evaluate (shared with test_collection)."""
    bundle = BUNDLES[request.param]
    return {"bundle": bundle, "name": request.param, **tiny_run(bundle)}


def test_tiny_train_infer_evaluate(tiny_cddpm_run):
    out = tiny_cddpm_run["output_dir"]
    assert os.path.isfile(os.path.join(out, "models", "model.pt"))
    with open(os.path.join(out, "outputs", "summary.csv")) as f:
        rows = list(csv.DictReader(f))
    test = json.load(open(os.path.join(tiny_cddpm_run["dataset_dir"], "datalist.json")))["test"]
    assert len(rows) == len(test) > 0
    entry = test[0]
    folder = os.path.join(out, "outputs", f"{entry['case']}_z{entry['slice']:03d}")
    assert {"condition.nii.gz", "output.nii.gz", "target.nii.gz", "panel.png"} <= set(os.listdir(folder))
    source = nib.load(os.path.join(tiny_cddpm_run["dataset_dir"], entry["image"]))
    written = nib.load(os.path.join(folder, "output.nii.gz"))
    assert written.shape == (32, 32, 1, 1) and np.allclose(written.affine, source.affine)  # the input's affine
    metrics = json.load(open(os.path.join(out, "eval", "metrics.json")))
    assert [r["method"] for r in metrics["rows"]] == BASELINES[tiny_cddpm_run["name"]] + ["Med-cDiff", "ground truth"]
    keys = ("psnr", "ssim", "nmse", "accutance") + (("psnr_hole", "nmse_hole") if "inpainting" in tiny_cddpm_run["name"] else ())
    assert all(np.isfinite(r[k]) for r in metrics["rows"][:-1] for k in keys)
    assert ("psnr_hole" in metrics["rows"][0]) == ("inpainting" in tiny_cddpm_run["name"])
    assert len(metrics["skipped"]) == 2 and os.path.isfile(os.path.join(out, "eval", "panel.png"))


def test_inpainting_output_keeps_the_known_pixels(tiny_cddpm_run):
    if "inpainting" not in tiny_cddpm_run["name"]:
        pytest.skip("inpainting bundle only")
    folders = glob.glob(os.path.join(tiny_cddpm_run["output_dir"], "outputs", "*", ""))
    assert folders
    for folder in folders:
        load = lambda name: nib.load(os.path.join(folder, name)).get_fdata()[..., 0, :]  # noqa: E731
        known = load("mask.nii.gz")[..., 0] < 0.5
        assert known.any() and not known.all()  # a hole and known pixels around it
        assert np.allclose(load("output.nii.gz")[..., 0][known], load("target.nii.gz")[..., 0][known], atol=1e-5)


def _label_task(run):
    """``(preprocessing, inferer, postprocessing, network)`` of inference.json, as MONAI Label builds them."""
    parser = ConfigParser()
    parser.read_config([os.path.join(run["bundle"], "configs", "inference.json"), os.path.join(run["bundle"], "configs", "demo.json")])
    parser.update(tiny_overrides(run["bundle"], run))
    parser.parse()
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(os.path.join(run["ckpt_dir"], "model.pt"), weights_only=True))
    network.eval()
    return (*(parser.get_parsed_content(k) for k in ("preprocessing", "inferer", "postprocessing")), network)


def _label_infer(run, item: dict, inferer=None) -> dict:
    """MONAI Label's steps on ``item``; ``inferer`` replaces the bundle's (e.g. :func:`_identity`)."""
    preprocessing, bundle_inferer, postprocessing, network = _label_task(run)
    data = preprocessing(item)
    data["pred"] = (inferer or bundle_inferer)(data["image"][None], network)[0]
    return postprocessing(data)


def _identity(condition, network):
    """An inferer returning the condition's image channel: the postprocessing alone maps it back to the input."""
    return condition[:, :1]


def test_monai_label_contract(tiny_cddpm_run):
    _, recipe = load_recipe(tiny_cddpm_run["bundle"])
    sample = sorted(glob.glob(os.path.join(tiny_cddpm_run["dataset_dir"], recipe["tiny"]["sample_image"])))[0]
    out = _label_infer(tiny_cddpm_run, {"image": sample})["pred"]
    source = LoadImage(image_only=True, ensure_channel_first=True)(sample)
    assert isinstance(out, MetaTensor) and out.shape == source.shape and torch.allclose(out.affine, source.affine)
    assert source.min() - 1e-5 <= out.min() and out.max() <= source.max() + 1e-5  # the input's intensity units
    # the postprocessing undoes the preprocessing: the identity "restoration" gives back the input in its own units
    # (inpainting: the hole of the condition is 0, the middle of the input's range; the known pixels are the input's)
    identity = _label_infer(tiny_cddpm_run, {"image": sample}, _identity)
    expected = source.clone()
    if "inpainting" in tiny_cddpm_run["name"]:
        hole = identity["mask"].reshape(source.shape) > 0.5
        assert hole.any() and not hole.all()
        expected[hole] = (source.min() + source.max()) / 2
    assert torch.allclose(identity["pred"], expected, atol=1e-4 * float(source.max() - source.min()))


def test_monai_label_output_on_the_input_grid(tiny_cddpm_run, tmp_path):
    """A 50x40 input with its own affine and intensities comes back on that grid; inpainting takes a hole mask file
    of the image's size (non-zero = hole), keeps every other pixel, and rejects a mask of another size."""
    affine = np.array([[0.7, 0, 0, -10], [0, 0.6, 0, 5], [0, 0, 3, 2], [0, 0, 0, 1.0]])
    image = np.random.default_rng(0).uniform(100, 900, (50, 40, 1)).astype(np.float32)
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "image.nii.gz")
    item = {"image": str(tmp_path / "image.nii.gz")}
    if "inpainting" in tiny_cddpm_run["name"]:
        mask = np.zeros_like(image)
        mask[10:20, 5:25] = 1
        nib.save(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
        nib.save(nib.Nifti1Image(mask[:30], affine), tmp_path / "small_mask.nii.gz")
        item["mask"] = str(tmp_path / "mask.nii.gz")
    out = _label_infer(tiny_cddpm_run, item)["pred"]
    assert out.shape == (1, 50, 40, 1) and np.allclose(out.affine.numpy(), affine, atol=1e-6)
    assert 100 <= out.min() and out.max() <= 900
    if "inpainting" not in tiny_cddpm_run["name"]:  # the identity "restoration" of a smooth image: its own grid and units
        smooth = (100 + 800 * np.outer(np.linspace(0, 1, 50), np.linspace(0.5, 1, 40)))[..., None].astype(np.float32)
        nib.save(nib.Nifti1Image(smooth, affine), tmp_path / "smooth.nii.gz")
        back = _label_infer(tiny_cddpm_run, {"image": str(tmp_path / "smooth.nii.gz")}, _identity)["pred"]
        assert back.shape == (1, 50, 40, 1)
        assert torch.allclose(back, torch.from_numpy(smooth[None]), atol=16)  # 2% of the range: bicubic at the border
    if "inpainting" in tiny_cddpm_run["name"]:
        known = torch.from_numpy(mask[None] == 0)
        assert torch.allclose(out[known], torch.from_numpy(image[None])[known]) and not torch.allclose(out[~known], torch.from_numpy(image[None])[~known])
        from medi2i import InputError

        with pytest.raises(RuntimeError) as err:  # MONAI's Compose wraps the one-line InputError
            _label_task(tiny_cddpm_run)[0]({**item, "mask": str(tmp_path / "small_mask.nii.gz")})
        assert isinstance(err.value.__cause__, InputError) and "mask is (30, 40)" in str(err.value.__cause__)


def test_runner_writes_the_output_on_the_input_grid(tiny_cddpm_run, tmp_path):
    """inference.json on a user's 50x40 slice: ``output.nii.gz`` is the network's 32x32 sample, ``restored.nii.gz``
    the same sample on the input's grid (shape, affine) and in its intensity units, as MONAI Label returns it."""
    affine = np.array([[0.7, 0, 0, -10], [0, 0.6, 0, 5], [0, 0, 3, 2], [0, 0, 0, 1.0]])
    image = (100 + 800 * np.outer(np.linspace(0, 1, 50), np.linspace(0.5, 1, 40)))[..., None].astype(np.float32)
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "slice.nii.gz")
    inputs = str(tmp_path / "slice.nii.gz")
    if "inpainting" in tiny_cddpm_run["name"]:  # the user's hole mask, given through a datalist
        mask = np.zeros_like(image)
        mask[10:30, 10:25] = 1
        nib.save(nib.Nifti1Image(mask, affine), tmp_path / "slice_mask.nii.gz")
        json.dump({"test": [{"image": inputs, "mask": str(tmp_path / "slice_mask.nii.gz")}]}, open(tmp_path / "list.json", "w"))
        inputs = str(tmp_path / "list.json")
    parser = ConfigParser()
    parser.read_config([os.path.join(tiny_cddpm_run["bundle"], "configs", n) for n in ("inference.json", "demo.json")])
    parser.update({**tiny_overrides(tiny_cddpm_run["bundle"], tiny_cddpm_run), "inputs": inputs, "degrade_inputs": False,
                   "output_dir": str(tmp_path / "out")})
    parser.parse()
    parser.get_parsed_content("restoration").run()
    folder = tmp_path / "out" / "slice"
    output, restored = (nib.load(folder / f"{k}.nii.gz") for k in ("output", "restored"))
    assert output.shape[:2] == (32, 32) and restored.shape[:2] == (50, 40)
    assert np.allclose(restored.affine, affine, atol=1e-6)
    values = restored.get_fdata().reshape(50, 40)
    assert 100 - 1e-3 <= values.min() and values.max() <= 900 + 1e-3 and values.std() > 10
    if "inpainting" in tiny_cddpm_run["name"]:  # pixels outside the user's hole are the input's own
        known = mask[..., 0] == 0
        assert np.allclose(values[known], image[..., 0][known], atol=1e-3)


def test_train_configs_have_every_monai_property(tiny_cddpm_run):
    """Train configs lack no MONAI train property, documented or not (test_collection checks that the properties
    the inference config lacks are named in the docs)."""
    bundle = tiny_cddpm_run["bundle"]
    for config in verify.train_configs(bundle):
        assert verify.missing_properties(bundle, config, tiny_overrides(bundle, tiny_cddpm_run, config)) == [], config


def _run_inference(bundle, overrides, tmp_path):
    configs = [os.path.join(bundle, "configs", name) for name in ("inference.json", "demo.json")]
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", json.dumps(configs)]
    for key, value in overrides.items():
        args += [f"--{key}", repr(value) if not isinstance(value, str) else value]
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "common"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=str(tmp_path))


def test_bad_input_is_one_line_and_writes_nothing(tiny_cddpm_run, tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not an image")
    two_channels = tmp_path / "two.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 1, 2), np.float32), np.eye(4)), two_channels)
    cases = [(str(bad), "cannot be read"), (str(two_channels), "single-channel")]
    for path, message in cases:
        out = tmp_path / f"out_{os.path.basename(path)}"
        result = _run_inference(tiny_cddpm_run["bundle"], {**tiny_overrides(tiny_cddpm_run["bundle"], tiny_cddpm_run), "inputs": path,
                                                           "degrade_inputs": False, "output_dir": str(out)}, tmp_path)
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1 and message in errors[0] and path in errors[0], result.stderr[-2000:]
        assert not out.exists()


def test_mask_not_matching_the_image_is_rejected():
    from medi2i import InputError

    with pytest.raises(InputError, match="mask is"):
        InpaintingMaskd("image")({"image": _image(32), "mask": torch.ones(1, 16, 16)})


# --- behaviour: the demo weights beat the classical baselines on held-out phantoms ------------------------------

SR = BUNDLES["prostate_mri_super_resolution_cddpm"]
DN = BUNDLES["chest_xray_denoising_cddpm"]
#: sampler of the behaviour tests (the demo overlays'): stochastic DDIM (eta = 1), 50 steps; "Performance" in the SR
#: docs has every sampler on the same slices (deterministic DDIM fails on some noise draws with these weights)
TEST_SAMPLER = {"sampling_method": "ddim", "ddim_steps": 50, "ddim_eta": 1.0}


def _restore_held_out(bundle, tmp_path, num_cases, every):
    """Restore phantoms of another seed than the demo recipe's (every ``every``-th slice of ``num_cases`` cases,
    degraded by the bundle's seeded x -> y) with the demo weights; return (restored, condition y, target x, parser).
    Skips with the reproduction command when the demo weights are absent."""
    from medi2i.data import load_section, phantom_datalist

    _, recipe = load_recipe(bundle)
    weights = os.path.join(bundle, recipe["weights"], "model.pt")
    if not os.path.isfile(weights):
        pytest.skip(f"demo weights absent: {weights} (python tools/demo.py --bundle {bundle} --retrain --save_weights)")
    data = {k: v for k, v in recipe["data"].items() if k != "generator"}
    dataset_dir = phantom_datalist(str(tmp_path), **{**data, "num_cases": num_cases, "seed": data["seed"] + 1,
                                                      "val_fraction": 0.0, "test_fraction": 0.0})
    parser = ConfigParser()
    parser.read_config([os.path.join(bundle, "configs", n) for n in ("inference.json", "demo.json")])
    parser.update({"dataset_dir": dataset_dir, **TEST_SAMPLER})
    degrade = parser.get_parsed_content("test_preprocessing")  # the bundle's seeded x -> y
    pairs = [degrade(item) for item in load_section(os.path.join(dataset_dir, "datalist.json"), "training")[::every]]
    y = torch.stack([torch.as_tensor(p["condition"]) for p in pairs]).float()
    x = torch.stack([torch.as_tensor(p["target"]) for p in pairs]).float()
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(weights, weights_only=True))
    return parser.get_parsed_content("inferer")(y, network.eval()), y, x, parser


def test_super_resolution_beats_bicubic_on_held_out_phantoms(tmp_path):
    """The demo weights (the demo recipe's short CPU training on phantoms of seed 0) restore held-out phantoms of
    another seed better than bicubic interpolation of the same low-resolution slices: higher mean PSNR."""
    from medi2i.metrics.restoration import psnr, ssim
    from medi2i.workflows import Interpolation

    restored, y, x, parser = _restore_held_out(SR, tmp_path, num_cases=2, every=4)  # 8 of the 32 slices
    bicubic = Interpolation(parser.get_parsed_content("sr_factor"), "bicubic")(y, x)
    gain = psnr(restored, x) - psnr(bicubic, x)
    assert len(x) == 8 and (gain > 0).all() and gain.mean() > 3.0, f"PSNR gain over bicubic per slice: {gain.tolist()}"
    assert ssim(restored, x).mean() > ssim(bicubic, x).mean()


def test_denoising_beats_noisy_input_median_and_nlm_on_held_out_phantoms(tmp_path):
    """The demo weights (the demo recipe's short CPU training on chest phantoms of seed 0) denoise held-out
    radiograph phantoms of another seed better than the noisy input, a 3x3 median filter and non-local means:
    higher PSNR."""
    from medi2i.metrics.restoration import psnr, ssim
    from medi2i.workflows import MedianFilter, NoisyInput, NonLocalMeans

    restored, y, x, _ = _restore_held_out(DN, tmp_path, num_cases=8, every=1)
    for name, baseline in (("noisy input", NoisyInput()), ("median 3x3", MedianFilter(3)), ("non-local means", NonLocalMeans())):
        gain = psnr(restored, x) - psnr(baseline(y), x)
        assert len(x) == 8 and (gain > 0).all() and gain.mean() > 3.0, f"PSNR gain over {name} per image: {gain.tolist()}"
        assert ssim(restored, x).mean() > ssim(baseline(y), x).mean(), name


def test_inpainting_beats_biharmonic_and_nearest_in_the_hole_on_held_out_phantoms(tmp_path):
    """The demo weights (the demo recipe's short CPU training on pelvis phantoms of seed 0) fill the seeded masks of
    held-out phantoms of another seed better than biharmonic and nearest-pixel fills: higher PSNR inside the hole,
    and the known pixels are kept exactly."""
    restored, y, x, _ = _restore_held_out(BUNDLES["prostate_mri_inpainting_cddpm"], tmp_path, num_cases=2, every=1)
    mask = y[:, 1:2]
    assert len(x) == 32 and torch.equal(restored[mask < 0.5], x[mask < 0.5])
    for name, baseline in (("biharmonic", BiharmonicFill()), ("nearest", NearestFill())):
        gain = psnr_in_mask(restored, x, mask) - psnr_in_mask(baseline(y), x, mask)
        assert gain.mean() > 1.5 and (gain > 0).float().mean() >= 0.75, f"hole PSNR gain over {name} per slice: {gain.tolist()}"
