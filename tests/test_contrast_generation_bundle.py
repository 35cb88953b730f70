"""The contrast-generation bundle through monai.bundle: tiny train -> infer -> evaluate on contrast phantoms, the
behaviour on phantoms, MONAI Label and workflow contracts, readers of real layouts, and bad input."""

import csv
import json
import os
import subprocess
import sys
import types

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.transforms import LoadImage
from PIL import Image

from conftest import ROOT, expect_input_error, shared
from medi2i.data.contrast_slices import build_contrast_datalist, contrast_counts
from medi2i.data.fastmri import read_fastmri_volume
from medi2i.errors import InputError
from medi2i.recipes import load_recipe, run_step
from medi2i import verify
from medi2i.verify import tiny_overrides
from medi2i.serving import bundle_infer

BUNDLE = os.path.join(ROOT, "bundles", "brain_mri_contrast_generation_cddpm")
CONFIGS = os.path.join(BUNDLE, "configs")
PAPER_CONTRASTS = ["FLAIR", "T1", "T1 post-contrast", "T2"]


@pytest.fixture(scope="session")
def cddpm_run(tiny_run):
    """The bundle's recipe at tiny size: contrast phantoms -> train DDPM -> train classifier -> infer -> evaluate."""
    return tiny_run(BUNDLE)


def test_tiny_train_infer_evaluate(cddpm_run):
    (overlay, recipe), out = load_recipe(BUNDLE), cddpm_run["output_dir"]
    tiny = recipe["tiny"]
    for path in ("models/model.pt", "models/classifier.pt", "runs/diffusion/checkpoint_iteration=6.pt",
                 "runs/classifier/checkpoint_iteration=3.pt"):
        assert os.path.isfile(os.path.join(out, path)), path
    n, size, pixdim = tiny["overrides"]["num_samples"], overlay["image_size"], overlay["pixdim"]
    with open(os.path.join(out, "outputs", "summary.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["contrast"] for r in rows] == [c for c in PAPER_CONTRASTS for _ in range(n)]
    for row in rows:
        image = nib.load(os.path.join(out, "outputs", row["file"]))
        assert image.shape == (size, size, 1, 1) and np.allclose(np.diag(image.affine), [pixdim, pixdim, 1.0, 1.0])
    for picture in ("grid.png", "trajectory.png", "trajectory.gif"):
        assert os.path.getsize(os.path.join(out, "outputs", picture)) > 1000, picture
    metrics = json.load(open(os.path.join(out, "eval", "metrics.json")))
    weights = [r["guidance_weight"] for r in metrics["rows"]]
    assert weights == ["real"] * 4 + [0.0] * 4 + [0.5] * 4 + [2.0] * 4  # the paper's w in {0, 0.5, 2}
    assert all(0.0 <= r["accuracy"] <= 1.0 and np.isfinite(r["histogram_emd"]) for r in metrics["rows"])
    assert metrics["fid"].startswith("off") and os.path.isfile(os.path.join(out, "eval", "metrics.md"))


def test_workflow_properties(cddpm_run):
    """Train configs lack no MONAI property; inference lacks exactly ``dataset`` and ``evaluator`` (generation
    iterates over no input dataset; test_collection checks that the docs name them)."""
    missing = {config: verify.missing_properties(BUNDLE, config, tiny_overrides(
        BUNDLE, cddpm_run, config, bundle_root=cddpm_run["output_dir"] + "/workflow", cache_rate=0.0))
        for config in ("train.json", "train_classifier.json", "inference.json")}
    assert missing == {"train.json": [], "train_classifier.json": [], "inference.json": ["dataset", "evaluator"]}


def test_monai_label_contract(cddpm_run, tmp_path):
    """MONAI Label's steps (``bundle_infer``): the input slice fixes the output's size and affine, whatever its size,
    format or channels; a volume gives its middle slice; a 1-pixel-wide image is refused with a one-line error naming the file."""
    kwargs = dict(overrides=tiny_overrides(BUNDLE, cddpm_run, contrast="T2", guidance_weight=2.0),
                  overlays=[os.path.join(CONFIGS, "demo.json")], model_file=os.path.join(cddpm_run["ckpt_dir"], "model.pt"))
    affine = np.array([[0.9, 0, 0, 5], [0, 1.3, 0, -7], [0, 0, 3, 2], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((30, 22), np.float32), affine), tmp_path / "slice.nii.gz")
    pred = bundle_infer(BUNDLE, str(tmp_path / "slice.nii.gz"), str(tmp_path / "pred.nii.gz"), **kwargs)
    written = nib.load(tmp_path / "pred.nii.gz")
    assert written.shape[:2] == (30, 22) and np.allclose(written.affine, affine)  # not the network's 16 x 16
    assert float(pred.min()) >= 0.0 and float(pred.max()) <= 1.0
    assert torch.equal(pred, bundle_infer(BUNDLE, str(tmp_path / "slice.nii.gz"), **kwargs))  # seeded
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(tmp_path / "slice.png")  # RGB: channels are averaged
    png = bundle_infer(BUNDLE, str(tmp_path / "slice.png"), **kwargs)
    assert png.shape[1:] == LoadImage(image_only=True, ensure_channel_first=True)(str(tmp_path / "slice.png")).shape[1:]
    # a volume (what MONAI Label users send) gives its middle axial slice, placed at that slice's position
    nib.save(nib.Nifti1Image(np.ones((8, 8, 5), np.float32), affine), tmp_path / "volume.nii.gz")
    bundle_infer(BUNDLE, str(tmp_path / "volume.nii.gz"), str(tmp_path / "from_volume.nii.gz"), **kwargs)
    written = nib.load(tmp_path / "from_volume.nii.gz")
    assert written.shape[:3] == (8, 8, 1) and np.allclose(written.affine[:3, 3], affine[:3, 3] + 2 * affine[:3, 2])
    nib.save(nib.Nifti1Image(np.ones((8, 1), np.float32), affine), tmp_path / "line.nii.gz")
    with pytest.raises(InputError) as err:  # the one-line error, not MONAI's Compose wrapper
        bundle_infer(BUNDLE, str(tmp_path / "line.nii.gz"), **kwargs)
    assert str(err.value).startswith(f"{tmp_path / 'line.nii.gz'}: expected a 2D slice")


# ---- bad input: one line on stderr, exit status 2, nothing written -------------------------------------------

def test_bad_settings(capsys, cddpm_run, tmp_path):
    args = tiny_overrides(BUNDLE, cddpm_run, output_dir=str(tmp_path / "out"))
    expect_input_error(capsys, BUNDLE, {**args, "generate_contrasts": ["T1", "DWI"]}, "contrast: unknown contrast 'DWI' (configured: FLAIR, T1, T1 post-contrast, T2)")
    expect_input_error(capsys, BUNDLE, {**args, "guidance_weight": -0.5}, "guidance_weight: w must be a number >= 0")
    expect_input_error(capsys, BUNDLE, {**args, "num_samples": 0}, "num_samples: N must be a positive integer, got 0")
    expect_input_error(capsys, BUNDLE, {**args, "sampler": "euler"}, "sampler: unknown sampler 'euler' (ddpm or ddim)")
    expect_input_error(capsys, BUNDLE, {**args, "ckpt_dir": str(tmp_path / "none")}, "model.pt: diffusion model checkpoint not found")
    expect_input_error(capsys, BUNDLE, {**args, "guidance_weights": [0.0, -2.0], "output_dir": str(tmp_path / "eval")},
                       "guidance_weight: w must be a number >= 0", "evaluate.json")
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "eval")


def test_existing_outputs_are_not_overwritten(capsys, cddpm_run, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("user data")
    expect_input_error(capsys, BUNDLE, tiny_overrides(BUNDLE, cddpm_run, output_dir=str(tmp_path / "out")), "output folder exists and is not empty")
    assert os.listdir(tmp_path / "out") == ["keep.txt"]


def test_command_line_error_is_one_line_with_nonzero_exit(tmp_path):
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", os.path.join(CONFIGS, "inference.json"),
            "--meta_file", os.path.join(CONFIGS, "metadata.json"), "--bundle_root", str(tmp_path),
            "--contrast", "T1", "--generate_contrasts", "['T1','T3']", "--output_dir", str(tmp_path / "out")]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: contrast: unknown contrast 'T3' (configured: FLAIR, T1, T1 post-contrast, T2)"
    assert "Traceback" not in proc.stderr and not os.path.exists(tmp_path / "out")


# ---- readers of the real layouts ---------------------------------------------------------------------------

def test_real_brats_and_ixi_slices_are_labelled_by_contrast(tmp_path):
    sources = {"brats": shared("brats2018"), "ixi": shared("ixi_thickslice")}
    datalist = json.load(open(build_contrast_datalist(sources, str(tmp_path), image_size=128, pixdim=2.0,
                                                      val_fraction=0.0, test_fraction=0.5,
                                                      min_tissue_fraction=0.9)))  # fewer slices: faster
    counts = {s: contrast_counts(datalist[s]) for s in ("training", "test")}
    brats = next(s for s in counts if "FLAIR" in counts[s])
    assert set(counts[brats]) == set(PAPER_CONTRASTS)  # t1, t1ce -> "T1 post-contrast", t2, flair
    ixi = "test" if brats == "training" else "training"
    assert set(counts[ixi]) == {"T1", "T2", "PD"}  # PD: the fifth class when IXI is used
    entry = datalist[brats][len(datalist[brats]) // 2]  # a mid-brain slice
    image = nib.load(os.path.join(tmp_path, entry["image"]))
    assert image.shape == (128, 128, 1, 1) and np.allclose(abs(np.diag(image.affine)[:2]), 2.0)
    pixels = image.get_fdata()
    assert pixels.min() >= 0 and pixels.max() <= 1 and (pixels > 0.05).mean() > 0.03  # brain, not an empty slice


class _FakeH5:
    """The part of ``h5py.File`` the fastMRI reader uses."""

    def __init__(self, data, attrs):
        self.data, self.attrs = data, attrs

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __contains__(self, key):
        return key in self.data

    def __getitem__(self, key):
        return _Dataset(self.data[key])


class _Dataset:
    def __init__(self, array):
        self.array = array

    def __getitem__(self, key):
        return self.array[key]


def test_fastmri_reader(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    rss = np.zeros((6, 32, 32), np.float32)
    rss[:, 8:24, 8:24] = 1e-4 * (1 + rng.random((6, 16, 16)))  # magnitudes of the order of fastMRI's
    files = {str(tmp_path / "file_brain_AXT1POST_201_6002780.h5"): ({"reconstruction_rss": rss}, {"acquisition": "AXT1POST"}),
             str(tmp_path / "file_brain_AXFLAIR_200_6002462.h5"): ({"reconstruction_rss": rss}, {"acquisition": b"AXFLAIR"}),
             str(tmp_path / "file_brain_test.h5"): ({"kspace": rss}, {"acquisition": "AXT2"})}
    for path in files:
        open(path, "w").close()
    monkeypatch.setitem(sys.modules, "h5py", types.SimpleNamespace(File=lambda path, mode: _FakeH5(*files[str(path)])))
    volume, acquisition = read_fastmri_volume(str(tmp_path / "file_brain_AXT1POST_201_6002780.h5"))
    assert volume.shape == (6, 32, 32) and acquisition == "AXT1POST"
    with pytest.raises(InputError, match="file_brain_test.h5: has no 'reconstruction_rss' dataset"):
        read_fastmri_volume(str(tmp_path / "file_brain_test.h5"))
    os.remove(tmp_path / "file_brain_test.h5")
    datalist = json.load(open(build_contrast_datalist({"fastmri": str(tmp_path)}, str(tmp_path / "out"), image_size=16,
                                                      fastmri_downsample=2, val_fraction=0.0, test_fraction=0.0)))
    assert contrast_counts(datalist["training"]) == {"FLAIR": 6, "T1 post-contrast": 6}  # acquisition -> contrast
    assert nib.load(os.path.join(tmp_path, "out", datalist["training"][0]["image"])).shape == (16, 16, 1, 1)  # 32 / 2


def test_fastmri_without_h5py_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py -> ImportError
    with pytest.raises(InputError, match=r"^h5py: reading fastMRI HDF5 files needs the h5py package \(pip install h5py\)$"):
        read_fastmri_volume(str(tmp_path / "x.h5"))


# ---- behaviour on contrast phantoms ------------------------------------------------------------------------

def test_demo_weights_samples_separate_by_requested_contrast(cddpm_run):
    """Samples of each requested contrast have the phantom's brain-core intensity order (T1, T1 post-contrast >
    FLAIR > T2), and guidance w = 2 spreads the contrasts further apart than w = 0. Needs the demo weights (about
    240 iterations, under 30 s of CPU): the few iterations of the tiny run are not enough (see docs, Performance)."""
    weights = os.path.join(BUNDLE, "models", "demo")
    if not os.path.isfile(os.path.join(weights, "model.pt")):
        pytest.skip("demo weights not present (reproduce them with the demo recipe in configs/demo.json)")
    from medi2i.workflows.contrast_evaluation import load_real_slices

    parser = ConfigParser()
    parser.read_config([os.path.join(CONFIGS, "inference.json"), os.path.join(CONFIGS, "demo.json")])
    parser.update({"bundle_root": cddpm_run["output_dir"]})
    parser.parse()
    network = parser.get_parsed_content("network_def").eval()
    network.load_state_dict(torch.load(os.path.join(weights, "model.pt"), weights_only=True))
    inferer = parser.get_parsed_content("inferer")
    inferer.sampler.progress = False
    real = load_real_slices(os.path.join(cddpm_run["dataset_dir"], "datalist.json"), "training", PAPER_CONTRASTS)
    size = real["T1"].shape[-1]
    core = (slice(None), 0, slice(size * 5 // 16, size * 11 // 16), slice(size * 5 // 16, size * 11 // 16))
    real_mean = {name: float(images[core].mean()) for name, images in real.items()}
    noise = torch.randn(8, 1, size, size, generator=torch.Generator().manual_seed(0))
    generated = {}
    for w in (0.0, 2.0):
        generated[w] = {name: float(inferer(noise, network, contrast=name, guidance_weight=w, noise=noise)[core].mean())
                        for name in PAPER_CONTRASTS}
    pairs = [(a, b) for a in PAPER_CONTRASTS for b in PAPER_CONTRASTS if real_mean[a] > real_mean[b] + 0.05]
    assert {("T1", "T2"), ("T1", "FLAIR"), ("FLAIR", "T2")} <= set(pairs)
    for a, b in pairs:
        assert generated[2.0][a] > generated[2.0][b], (a, b, generated[2.0])
    spread = {w: max(g.values()) - min(g.values()) for w, g in generated.items()}
    assert spread[2.0] > spread[0.0]
