"""The bundles served by the real MONAI Label (``monailabel`` 0.8.5, issue 14): its stock ``BundleInferTask`` on each
bundle with real images from ../shared/data, and the real server answering ``/infer/<model>`` over HTTP (a 2D bundle
and ALDM with its target sequence as a request parameter).

Skipped when ``monailabel`` is not installed. Install it without its GPU-only dependencies (sam2, torchvision,
CUDA torch) as ``tests/requirements-monailabel.txt`` says. ``monailabel.transform.post`` imports torchvision's
``make_grid``/``save_image`` (unused here); where torchvision is missing the test puts a stand-in on ``sys.path``.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pytest

from conftest import ROOT, shared
from medi2i.serving import prepare_monailabel_bundle, write_monailabel_app

if importlib.util.find_spec("monailabel") is None:
    pytest.skip("monailabel is not installed (see tests/requirements-monailabel.txt: pip install --no-deps monailabel==0.8.5 "
               "pydicom-seg==0.4.1 && pip install -r tests/requirements-monailabel.txt)",
                allow_module_level=True)

FAST = {"ddim_steps": 5, "sampling_method": "ddim"}
PROSTATE = ("prostatex", "ProstateX-0000", "ProstateX-0000_t2w_tra.nii.gz")
BRATS = ("brats2018", "Brats18_TCIA01_201_1")
ALDM_SOURCE = (*BRATS, "Brats18_TCIA01_201_1_t1.nii.gz")
# bundle, image under ../shared/data, request parameters, weights ("shipped": models/demo, else models/real)
CASES = [
    ("chest_xray_denoising_cddpm", ("chest_xray_nih", "00000075_000.png"), {}, "demo"),
    ("prostate_mri_super_resolution_cddpm", PROSTATE, {}, "demo"),
    ("prostate_mri_inpainting_cddpm", PROSTATE, {"slice_index": 8}, "demo"),
    ("brats_mri_tumor_growth_regression_guidance", BRATS, {"output_channel": 3}, "demo"),
    ("brain_mri_contrast_generation_cddpm", ("ixi_thickslice", "ds_IXI002-Guys-0828-T1.nii.gz"), {"contrast": "T2"}, "demo"),
    ("brats_mri_tumor_inpainting_segmentation_guidance", BRATS, {}, "shipped"),
]


def _torchvision_stand_in(root) -> str | None:
    """A folder with a ``torchvision.utils`` offering the two names ``monailabel.transform.post`` imports, or None
    when torchvision is installed."""
    if importlib.util.find_spec("torchvision") is not None:
        return None
    package = root / "torchvision"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "utils.py").write_text(
        "def make_grid(*args, **kwargs):\n    raise NotImplementedError('torchvision stand-in (tests only)')\n\n\n"
        "def save_image(*args, **kwargs):\n    raise NotImplementedError('torchvision stand-in (tests only)')\n")
    return str(root)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    path = _torchvision_stand_in(tmp_path_factory.mktemp("stand_in"))
    if path:
        sys.path.insert(0, path)
    yield path
    if path:
        sys.path.remove(path)


def _served_bundle(bundle, weights, model_dir):
    return prepare_monailabel_bundle(os.path.join(ROOT, "bundles", bundle), model_dir,
                                     weights=weights if weights == "shipped" else f"models/{weights}", overrides=FAST)


def _check_on_input_grid(written_path, source_path):
    """The written NIfTI is float, finite, not constant, has the input's in-plane size, and lies on the input's grid
    (same axes and spacing; origin at a voxel of the input, e.g. the translated slice's position)."""
    written = nib.load(written_path)
    data = np.asarray(written.dataobj, dtype=np.float32)
    assert np.isfinite(data).all() and data.std() > 0
    if source_path.endswith(".png"):
        from PIL import Image

        assert written.shape[:2] == Image.open(source_path).size[::-1] or written.shape[:2] == Image.open(source_path).size
        return
    if os.path.isdir(source_path):
        source_path = [os.path.join(source_path, f) for f in sorted(os.listdir(source_path)) if f.endswith("_flair.nii.gz")][0]
    source = nib.load(source_path)
    assert written.shape[:2] == source.shape[:2]
    assert np.allclose(written.affine[:3, :3], source.affine[:3, :3], atol=1e-3)
    voxel = np.linalg.solve(source.affine, written.affine[:, 3])[:3]
    assert np.allclose(voxel, np.round(voxel), atol=1e-2) and np.allclose(voxel[:2], 0, atol=1e-2), voxel
    assert 0 <= round(voxel[2]) < source.shape[2]


@pytest.mark.parametrize("bundle,image,params,weights", CASES, ids=[c[0] for c in CASES])
def test_bundle_infer_task(bundle, image, params, weights, stand_in, tmp_path):
    from monailabel.tasks.infer.bundle import BundleInferTask

    source = shared(*image)
    served = _served_bundle(bundle, weights, str(tmp_path / "model"))
    task = BundleInferTask(served, {}, extend_load_image=False, add_post_restore=False)
    assert task.is_valid()
    written, _ = task({"image": source, "device": "cpu", **params})
    assert written.endswith(".nii.gz")
    _check_on_input_grid(written, source)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_server_infers_over_http(stand_in, tmp_path):
    import httpx

    source, aldm_source = shared(*PROSTATE), shared(*ALDM_SOURCE)
    app = write_monailabel_app(str(tmp_path / "app"))
    prepare_monailabel_bundle(os.path.join(ROOT, "bundles", "prostate_mri_super_resolution_cddpm"),
                              os.path.join(app, "model"), overrides=FAST)
    prepare_monailabel_bundle(os.path.join(ROOT, "bundles", "brats_mri_multimodal_translation_ldm3d"),
                              os.path.join(app, "model"), overrides={"num_inference_steps": 2})
    studies = tmp_path / "studies"
    studies.mkdir()
    for path in (source, aldm_source):
        os.symlink(path, studies / os.path.basename(path))
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in [stand_in, os.environ.get("PYTHONPATH")] if p)}
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "monailabel.main", "start_server", "--app", app, "--studies",
                               str(studies), "--host", "127.0.0.1", "--port", str(port)],
                              cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/info/", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        info = httpx.get(f"{url}/info/", timeout=30).json()
        assert {"prostate_mri_super_resolution_cddpm", "brats_mri_multimodal_translation_ldm3d"} <= set(info["models"]), info

        def infer(model, image, params, name):
            response = httpx.post(f"{url}/infer/{model}", params={"image": image, "output": "image"},
                                  data={"params": json.dumps({"device": "cpu", **params})}, timeout=300)
            assert response.status_code == 200, response.text[-2000:] + (tmp_path / "server.log").read_text()[-3000:]
            path = tmp_path / f"{name}.nii.gz"
            path.write_bytes(response.content)
            return str(path)

        _check_on_input_grid(infer("prostate_mri_super_resolution_cddpm", "ProstateX-0000_t2w_tra", {}, "sr"), source)
        reference, outputs = nib.load(aldm_source), {}
        for target in ("t2", "flair"):  # the whole volume back on the input's grid, the requested target's image
            translated = nib.load(infer("brats_mri_multimodal_translation_ldm3d", "Brats18_TCIA01_201_1_t1",
                                        {"target": target}, target))
            assert translated.shape == reference.shape and np.allclose(translated.affine, reference.affine, atol=1e-3)
            outputs[target] = np.asarray(translated.dataobj, dtype=np.float32)
            assert np.isfinite(outputs[target]).all() and outputs[target].std() > 0
        assert not np.allclose(outputs["t2"], outputs["flair"])  # the request's target reached the inferer
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_bundle_infer_task_aldm_target_as_request_parameter(stand_in, tmp_path):
    """ALDM with its shipped real-data weights (models/real, float16 on disk): one MR sequence volume in, the
    requested target sequence out on the input's grid and affine."""
    from monailabel.tasks.infer.bundle import BundleInferTask

    source = shared(*ALDM_SOURCE)
    bundle = os.path.join(ROOT, "bundles", "brats_mri_multimodal_translation_ldm3d")
    served = prepare_monailabel_bundle(bundle, str(tmp_path / "model"), weights="shipped",
                                       overrides={"num_inference_steps": 2})
    task = BundleInferTask(served, {}, extend_load_image=False, add_post_restore=False)
    assert task.is_valid() and task._config["model_filename"] == ["model.pt"]  # helpers are not offered as the model
    outputs = {}
    for target in ("t2", "flair"):
        written, _ = task({"image": source, "device": "cpu", "target": target})
        image, reference = nib.load(written), nib.load(source)
        assert image.shape == reference.shape and np.allclose(image.affine, reference.affine, atol=1e-3)
        outputs[target] = np.asarray(image.dataobj, dtype=np.float32)
        assert np.isfinite(outputs[target]).all()
    assert not np.allclose(outputs["t2"], outputs["flair"])  # the request's target reached the inferer
