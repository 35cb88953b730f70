"""Checks every bundle under bundles/ must pass (issue 'Ecosystem'): static checks of files, metadata, packages, docs,
sizes, paths and overlays; configs instantiate; MONAI workflow properties; TorchScript; the standalone export running
outside the repository; the MONAI Label contract; the multi-GPU overlays (two gloo processes for one overlay per
bundle, a one-process group for the others)."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import BUNDLES, ROOT
from medi2i import verify
from medi2i.export import export_bundle
from medi2i.serving import bundle_infer

BUNDLE_DIRS = [os.path.join(ROOT, "bundles", b) for b in BUNDLES]


def _overlay_cases():
    cases = []
    for bundle in BUNDLE_DIRS:
        for k, config in enumerate(verify.train_configs(bundle)):
            cases.append(pytest.param(bundle, config, k == 0, id=f"{os.path.basename(bundle)}-{config}"))
    return cases


def _without_weights(bundle):
    return verify.shipped_weights(bundle) is None and not verify._read_large_files(bundle)


def _static_cases():
    cases = []
    for bundle, name in zip(BUNDLE_DIRS, BUNDLES):
        for check in verify.STATIC_CHECKS:
            marks = []
            if check == "model zoo" and _without_weights(bundle):
                marks = [pytest.mark.xfail(strict=True, reason="no weights shipped nor listed in large_files.yml (issue 14)")]
            cases.append(pytest.param(bundle, check, marks=marks, id=f"{name}-{check}"))
    return cases


@pytest.mark.parametrize("bundle,check", _static_cases())
def test_static_checks(bundle, check):
    assert verify.STATIC_CHECKS[check](bundle) == []


@pytest.mark.parametrize("bundle", BUNDLE_DIRS, ids=BUNDLES)
def test_verify_net_in_out(bundle):
    """MONAI's verify_net_in_out on network_def (demo size) with the metadata's ddpm_data_format: timesteps (and
    class labels or a cross-attention context) as extra forward arguments; 3D checked on a small latent."""
    three_d = "ldm3d" in bundle
    assert verify.check_net_in_out(bundle, spatial_shape=[16, 16, 12] if three_d else None) == []


def test_model_zoo_check_catches_what_the_zoo_rejects(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(os.path.join(ROOT, "bundles", "chest_xray_denoising_cddpm", "configs"), bundle / "configs")
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    del meta["authors"]
    meta["version"] = "9.9.9"
    del meta["ddpm_data_format"]["outputs"]  # the schema holds every <network>_data_format to the same rules
    (bundle / "configs" / "metadata.json").write_text(json.dumps(meta))
    problems = verify.check_model_zoo(str(bundle))
    assert any("LICENSE" in p for p in problems) and any("models/model.pt" in p for p in problems)
    assert any("changelog" in p for p in problems) and any("'authors' is a required property" in p for p in problems)
    assert any("'outputs' is a required property" in p for p in problems)
    assert verify.check_json_format(str(bundle)) == ["configs/metadata.json is not pretty-printed (4-space indent, final newline)"]


@pytest.mark.parametrize("drop", ["network", "train#dataloader#sampler", "train#trainer#train_handlers", "finalize"])
def test_overlay_check_names_what_an_overlay_lacks(tmp_path, drop):
    bundle = tmp_path / "bundle"
    shutil.copytree(os.path.join(ROOT, "bundles", "chest_xray_denoising_cddpm", "configs"), bundle / "configs")
    overlay = bundle / "configs" / "multi_gpu_train.json"
    content = json.loads(overlay.read_text())
    del content[drop]
    overlay.write_text(json.dumps(content))
    problems = verify.check_overlays(str(bundle))
    assert len(problems) == 1 and problems[0].startswith("multi_gpu_train.json lacks "), problems


@pytest.mark.parametrize("bundle", BUNDLE_DIRS, ids=BUNDLES)
def test_configs_instantiate_and_meet_monai_properties(bundle, tiny_run):
    run = tiny_run(bundle)
    for config in verify.runnable_configs(bundle):
        verify.instantiate_config(bundle, config, verify.tiny_overrides(bundle, run, config))
    assert verify.check_properties(bundle, run) == []
    assert verify.check_torchscript(bundle, run) == []


@pytest.mark.parametrize("bundle", BUNDLE_DIRS, ids=BUNDLES)
def test_standalone_export_and_monai_label_contract(bundle, tiny_run, tmp_path):
    run = tiny_run(bundle)
    detail = verify.check_standalone(bundle, run, str(tmp_path))
    zips = list((tmp_path / "dist").glob("*.zip"))
    assert len(zips) == 1 and (tmp_path / "dist" / (zips[0].name + ".sha256")).is_file()
    meta = json.load(open(tmp_path / "unpacked" / os.path.basename(bundle) / "configs" / "metadata.json"))
    assert "medi2i" not in meta["required_packages_version"] and meta["vendored_packages"]["medi2i"]
    unpacked = tmp_path / "unpacked" / os.path.basename(bundle)
    assert list((unpacked / "wheels").glob("medi2i-*-py3-none-any.whl"))  # pip-installable shared package
    assert (unpacked / "models" / "model.pt").is_file()
    assert verify.check_json_format(str(unpacked)) == []
    if not _without_weights(bundle):  # the export is what the model zoo's CI sees: min/regular checks pass on it
        assert verify.check_model_zoo(str(unpacked), exported=True) == []
    sample = verify.sample_image(bundle, run)
    if sample is None:  # 3D bundles: MONAI Label's 2D contract does not apply
        assert "standalone" in detail
        return
    # the contract in-process too: a translated image of the input's size with the input's affine
    overrides = verify.tiny_overrides(bundle, run, "inference.json")
    pred = bundle_infer(bundle, sample, str(tmp_path / "pred.nii.gz"), overrides=overrides,
                        overlays=[os.path.join(bundle, "configs", "demo.json")], model_file=os.path.join(run["ckpt_dir"], "model.pt"))
    source, written = nib.load(sample), nib.load(tmp_path / "pred.nii.gz")
    assert written.shape[:2] == source.shape[:2] and np.allclose(written.affine, source.affine)
    assert torch.isfinite(torch.as_tensor(pred)).all()
    served = nib.load(tmp_path / "served.nii.gz")  # the standalone copy served the same image the same way
    assert np.allclose(served.get_fdata(), written.get_fdata(), atol=1e-4)


def _overlay_files(bundle, config, run, tmp_path):
    # staged bundles: a train config may read the weights of earlier stages from ckpt_dir (copies keep their mtimes)
    shutil.copytree(run["ckpt_dir"], tmp_path / "models")
    overrides = {**verify.tiny_overrides(bundle, run, config), "bundle_root": str(tmp_path),
                 "ckpt_dir": str(tmp_path / "models"), "num_workers": 0}
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps(overrides))
    return [*verify.config_files(bundle, config), os.path.join(bundle, "configs", verify.multi_gpu_overlay(bundle, config)), str(path)]


@pytest.mark.parametrize("bundle,config,two_processes", _overlay_cases())
def test_multi_gpu_overlay(bundle, config, two_processes, tiny_run, tmp_path):
    run = tiny_run(bundle)
    files = _overlay_files(bundle, config, run, tmp_path)
    meta = os.path.join(bundle, "configs", "metadata.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if two_processes:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",
               "run", "--config_file", repr(files), "--meta_file", meta]
    else:
        env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29600 + os.getpid() % 300))
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", repr(files), "--meta_file", meta]
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.pt")}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    world = 2 if two_processes else 1
    for rank in range(world):
        assert f"rank {rank} of {world} finished" in proc.stdout + proc.stderr
    written = [p for p in tmp_path.rglob("*.pt") if before.get(p) != p.stat().st_mtime_ns]
    assert written, "no checkpoint written"
    events = [f for _, _, files in os.walk(tmp_path) for f in files if f.startswith("events.out.tfevents")]
    assert len({e.split(".")[-2] for e in events}) <= 1, f"TensorBoard files from more than one process: {events}"


def test_recipe_variants_extend_another_and_unknown_ones_are_refused(tmp_path):
    """ALDM's ``short`` run (docs) is the ``tiny`` variant's networks with its own data and step lengths."""
    from medi2i import InputError
    from medi2i.recipes import _variant, load_recipe, run_recipe

    bundle = os.path.join(ROOT, "bundles", "brats_mri_multimodal_translation_ldm3d")
    recipe = load_recipe(bundle)[1]
    short, tiny = _variant(recipe, "short"), recipe["tiny"]
    assert short["overrides"]["unet_channels"] == tiny["overrides"]["unet_channels"]  # tiny networks kept
    assert short["data"]["num_cases"] == 14 and short["data"]["shape"] == tiny["data"]["shape"]
    assert short["steps"]["train_diffusion.json"]["max_epochs"] * short["steps"]["train_diffusion.json"]["epoch_length"] == 600
    with pytest.raises(InputError, match="no recipe variant 'nope'"):
        run_recipe(bundle, str(tmp_path / "out"), variant="nope")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("dtype", [None, "float16"])
def test_saved_recipe_weights_load_into_the_float32_network(tmp_path, dtype):
    """``tools/demo.py --save_weights`` copies a run's weights, in half precision when the recipe says so (ALDM's
    real weights, to fit the size budget); they load into the configured float32 network all the same."""
    from medi2i.recipes import save_recipe_weights
    from medi2i.workflows import load_weights

    bundle, runs = tmp_path / "bundle", tmp_path / "run_models"
    (bundle / "configs").mkdir(parents=True)
    runs.mkdir()
    real = {"weights": "models/real", **({"weights_dtype": dtype} if dtype else {})}
    (bundle / "configs" / "demo.json").write_text(json.dumps({"demo": {"real": real}}))
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.BatchNorm2d(8))
    torch.save(network.state_dict(), runs / "model.pt")
    target = save_recipe_weights(str(bundle), str(runs), real=True)
    saved = torch.load(os.path.join(target, "model.pt"), weights_only=True)
    assert saved["0.weight"].dtype == (torch.float16 if dtype else torch.float32)
    assert saved["1.num_batches_tracked"].dtype == torch.int64  # integer buffers untouched
    fresh = load_weights(torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.BatchNorm2d(8)), os.path.join(target, "model.pt"))
    error = (fresh[0].weight - network[0].weight).abs().max().item()
    assert fresh[0].weight.dtype == torch.float32 and error <= (1e-3 if dtype else 0.0)
    if dtype:
        assert error > 0 and os.path.getsize(os.path.join(target, "model.pt")) < os.path.getsize(runs / "model.pt")
    assert sorted(os.listdir(target)) == ["model.pt"]  # no temporary file left


def test_export_with_weights_url_ships_large_files_list(tmp_path):
    """``--weights_url``: the zip carries no weights but the model zoo's ``large_files.json``; MONAI's
    ``download_large_files`` then fetches them from the URL (here a file:// folder) and checks their sha256."""
    from monai.bundle import download_large_files

    bundle = os.path.join(ROOT, "bundles", "brats_mri_multimodal_translation_ldm3d")
    base = tmp_path / "dist" / f"{os.path.basename(bundle)}_v{json.load(open(os.path.join(bundle, 'configs', 'metadata.json')))['version']}"
    zip_path = export_bundle(bundle, str(tmp_path / "dist"), weights_url=(pathlib.Path(str(base) + "_weights")).as_uri())
    with zipfile.ZipFile(zip_path) as zf:
        assert not [n for n in zf.namelist() if n.endswith(".pt")]
        zf.extractall(tmp_path / "unpacked")
    unpacked = tmp_path / "unpacked" / os.path.basename(bundle)
    assert verify.check_model_zoo(str(unpacked), exported=True) == []  # models/model.pt listed with url and hash
    assert verify.check_json_format(str(unpacked)) == []
    download_large_files(bundle_path=str(unpacked))
    for name in ("autoencoder.pt", "spade.pt", "model.pt"):
        assert (unpacked / "models" / name).read_bytes() == (pathlib.Path(bundle) / "models" / "real" / name).read_bytes()
    with pytest.raises(ValueError, match="exists already"):
        export_bundle(bundle, str(tmp_path / "dist"), weights_url="https://example.org/w")
