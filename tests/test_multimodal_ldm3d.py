"""ALDM bundle (3D multi-modal MRI translation): MS-SPADE routing, losses, the tiny stage 1 -> 2 -> 3 -> infer ->
evaluate run through monai.bundle, restored shape/affine, real-data readers and bad input."""

import pytest
import torch

from medi2i.networks import MSSPADE, MSSPADENetwork

TINY_SPADE = dict(spatial_dims=3, latent_channels=3, num_targets=4, in_channels=8, res_channels=(8,), spade_channels=(8, 8),
                  hidden_channels=8, io_kernel=3)


def test_ms_spade_switches_by_target_label():
    net = MSSPADENetwork(**TINY_SPADE).eval()
    z = torch.randn(1, 3, 6, 6, 4)
    outputs = [net(z, m) for m in range(4)]
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.allclose(outputs[a], outputs[b], atol=1e-4), (a, b)
    assert torch.equal(net(z, 2), net(z, torch.tensor([2]))) and torch.equal(net(z, 2), net(z, torch.eye(4)[[2]]))


def test_ms_spade_routes_each_sample_of_a_batch_to_its_own_target():
    net = MSSPADENetwork(**TINY_SPADE).eval()
    z = torch.randn(3, 3, 6, 6, 4)
    labels = torch.tensor([1, 3, 1])
    batched = net(z, labels)
    alone = torch.cat([net(z[i : i + 1], int(labels[i])) for i in range(3)])
    assert torch.allclose(batched, alone, atol=1e-5)
    swapped = net(z, torch.tensor([3, 1, 1]))
    assert torch.allclose(swapped[2], batched[2], atol=1e-5) and not torch.allclose(swapped[0], batched[0], atol=1e-4)


def test_ms_spade_layer_trains_only_the_generators_of_the_targets_seen():
    layer = MSSPADE(3, channels=4, num_targets=3, hidden_channels=4)
    layer(torch.randn(2, 4, 5, 5, 5), torch.tensor([0, 2])).square().mean().backward()
    assert layer.gamma[0].weight.grad.abs().sum() > 0 and layer.gamma[2].weight.grad.abs().sum() > 0
    assert layer.gamma[1].weight.grad is None and layer.shared[1][0].weight.grad is None
    with pytest.raises(ValueError, match="target labels must be in 0..2"):
        layer(torch.randn(1, 4, 5, 5, 5), 3)


def test_ms_spade_paper_size():
    net = MSSPADENetwork()  # supplementary Table B: 128 -> ResBlocks [256, 256] -> SPADEBlocks [256, 256, 256, 128] -> 3
    assert len(net.res_blocks) == 2 and len(net.spade_blocks) == 4
    assert [b.conv2.out_channels for b in net.spade_blocks] == [256, 256, 256, 128]
    assert len(net.spade_blocks[0].norm1.gamma) == 4 and net.out.out_channels == 3


# ---- losses ------------------------------------------------------------------------------------------------

def test_cycle_losses_are_zero_for_an_identity_pair_and_positive_otherwise():
    from medi2i.engines.aldm import autoencoder_cycle_loss, spade_cycle_loss

    x = torch.rand(2, 1, 8, 8, 8)
    identity_autoencoder = lambda v: (v, torch.zeros(()))  # noqa: E731
    assert autoencoder_cycle_loss(identity_autoencoder, x, x) == 0
    assert autoencoder_cycle_loss(lambda v: (0.5 * v, torch.zeros(())), x, x) > 0
    z, labels = torch.randn(2, 3, 4, 4, 4), torch.tensor([0, 1])
    assert spade_cycle_loss(lambda v, target: v, z, labels, z) == 0
    assert spade_cycle_loss(MSSPADENetwork(**TINY_SPADE), z, labels, z) > 0


def test_autoencoder_cycle_pass_trains_the_network_but_leaves_the_codebook():
    from monai.networks.nets import VQVAE

    from medi2i.engines.aldm import autoencoder_cycle_loss

    vqvae = VQVAE(spatial_dims=3, in_channels=1, out_channels=1, channels=(4, 8), num_res_layers=1, num_res_channels=(4, 8),
                  downsample_parameters=((2, 4, 1, 1), (1, 3, 1, 1)), upsample_parameters=((1, 3, 1, 1, 0), (2, 4, 1, 1, 0)),
                  num_embeddings=8, embedding_dim=2).train()
    x = torch.rand(1, 1, 8, 8, 8)
    codebook = vqvae.quantizer.quantizer.embedding.weight.clone()
    autoencoder_cycle_loss(vqvae, x, x).backward()
    assert torch.equal(vqvae.quantizer.quantizer.embedding.weight, codebook) and vqvae.quantizer.training
    assert vqvae.encoder.blocks[0].conv.weight.grad.abs().sum() > 0
    vqvae(x)  # a plain training pass does move the EMA codebook
    assert not torch.equal(vqvae.quantizer.quantizer.embedding.weight, codebook)


def test_perceptual_loss_is_off_without_local_weights(caplog, tmp_path):
    from medi2i import InputError
    from medi2i.engines.aldm import perceptual_loss

    with caplog.at_level("INFO"):
        assert perceptual_loss(None) is None
    assert "perceptual loss off" in caplog.text
    with pytest.raises(InputError, match="perceptual loss weights not found"):
        perceptual_loss(str(tmp_path / "resnet50.pth"))


# ---- the bundle through monai.bundle -----------------------------------------------------------------------

import json  # noqa: E402
import os  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from monai.bundle import ConfigParser  # noqa: E402

from conftest import ROOT, expect_input_error, shared  # noqa: E402
from medi2i.data.multimodal import load_multimodal, multimodal_cases  # noqa: E402
from medi2i.recipes import load_recipe, run_step  # noqa: E402
from medi2i import verify  # noqa: E402
from medi2i.verify import tiny_overrides  # noqa: E402

BUNDLE = os.path.join(ROOT, "bundles", "brats_mri_multimodal_translation_ldm3d")
CONFIGS = os.path.join(BUNDLE, "configs")


@pytest.fixture(scope="session")
def aldm_run(tiny_run):
    """Phantom volumes -> stage 1 -> stage 2 -> stage 3 -> inference -> evaluation at tiny size (shared with the
    collection tests)."""
    return tiny_run(BUNDLE)


def test_tiny_stage1_to_evaluate(aldm_run):
    out = aldm_run["output_dir"]
    for path in ("models/autoencoder.pt", "models/spade.pt", "models/model.pt", "runs/autoencoder/checkpoint_iteration=2.pt",
                 "runs/spade/checkpoint_iteration=2.pt", "runs/diffusion/checkpoint_iteration=2.pt"):
        assert os.path.isfile(os.path.join(out, path)), path
    test_cases = json.load(open(os.path.join(aldm_run["dataset_dir"], "datalist.json")))["test"]
    for case in test_cases:
        folder = os.path.join(out, "outputs", case["case"])
        assert {"t2.nii.gz", "flair.nii.gz", "panel.png"} <= set(os.listdir(folder))
        source = nib.load(os.path.join(aldm_run["dataset_dir"], case["image"][0]))
        written = nib.load(os.path.join(folder, "t2.nii.gz"))
        assert written.shape[:3] == source.shape and np.allclose(written.affine, source.affine)
    rows = json.load(open(os.path.join(out, "eval", "metrics.json")))["rows"]
    keys = {(r["method"], r["source"], r["target"]) for r in rows}
    assert keys == {(m, s, t) for m in ("aldm", "spade_only", "identity") for s in ("t1", "t2") for t in ("t2", "flair")}
    identity = {(r["source"], r["target"]): r for r in rows if r["method"] == "identity"}
    assert identity[("t2", "t2")]["nmse"] == 0 and identity[("t2", "t2")]["ssim"] == pytest.approx(1.0)
    assert 0 < identity[("t1", "t2")]["ssim"] < 1 and identity[("t1", "t2")]["nmse"] > 0
    assert all(np.isfinite([r["psnr"], r["nmse"], r["ssim"]]).all() for r in rows)
    assert "## aldm" in open(os.path.join(out, "eval", "matrix.md")).read()


def test_output_keeps_the_source_shape_and_affine(aldm_run, tmp_path):
    """A non-cubic, oblique single-modality file larger than the network grid on two sides comes back whole."""
    affine = np.array([[0.9, 0.1, 0, -40], [0, 1.1, 0, 20], [0.05, 0, 1.2, 7], [0, 0, 0, 1]])
    volume = np.zeros((40, 30, 36), np.float32)
    box = (slice(5, 35), slice(4, 26), slice(6, 30))  # the foreground: the crop box restored into the whole volume
    volume[box] = np.random.default_rng(0).uniform(100, 900, (30, 22, 24))
    outside = np.ones(volume.shape, bool)
    outside[box] = False
    nib.save(nib.Nifti1Image(volume, affine), str(tmp_path / "subject_t1.nii.gz"))
    run_step(BUNDLE, "inference.json", tiny_overrides(BUNDLE, aldm_run, inputs=str(tmp_path / "subject_t1.nii.gz"), output_dir=str(tmp_path / "out"),
                                            targets=["t1ce", "t2", "flair"]))
    for target in ("t1ce", "t2", "flair"):
        written = nib.load(str(tmp_path / "out" / "subject_t1" / f"{target}.nii.gz"))
        assert written.shape[:3] == (40, 30, 36) and np.allclose(written.affine, affine, atol=1e-5)
        assert (np.asarray(written.dataobj).reshape(volume.shape)[outside] == 0).all()  # background round the crop box
    assert os.path.isfile(tmp_path / "out" / "subject_t1" / "panel.png")
    # an identity "translation" (the scaled source, > 0 on the foreground) comes back inside the crop box only
    run_step(BUNDLE, "inference.json", tiny_overrides(BUNDLE, aldm_run, inputs=str(tmp_path / "subject_t1.nii.gz"), targets=["t2"],
                                                      output_dir=str(tmp_path / "identity"), inferer="$lambda x, network, target: x"))
    identity = np.asarray(nib.load(str(tmp_path / "identity" / "subject_t1" / "t2.nii.gz")).dataobj).reshape(volume.shape)
    assert np.array_equal(identity > 0, ~outside)


def test_real_brats_case_round_trips_through_the_tiny_model(aldm_run, tmp_path):
    case = shared("brats2018", "Brats18_TCIA01_201_1")
    run_step(BUNDLE, "inference.json", tiny_overrides(BUNDLE, aldm_run, inputs=case, output_dir=str(tmp_path / "out"), targets=["t2"]))
    source = nib.load(os.path.join(case, "Brats18_TCIA01_201_1_t1.nii.gz"))
    written = nib.load(str(tmp_path / "out" / "Brats18_TCIA01_201_1" / "t2.nii.gz"))
    assert written.shape[:3] == source.shape == (240, 240, 155) and np.allclose(written.affine, source.affine)


def test_real_data_readers():
    for folder, modalities in (("brats2018", ["t1", "t1ce", "t2", "flair"]), ("brats2023", ["t2", "flair"])):
        (case,) = multimodal_cases(shared(folder), modalities)
        volume = load_multimodal(case["image"])
        assert volume.shape == (len(modalities), 240, 240, 155) and volume.amax(dim=(1, 2, 3)).min() > 0
    (subject,) = multimodal_cases(shared("ixi_thickslice"), ["T1", "T2", "PD"])
    ixi = load_multimodal(subject["image"])  # T2 and PD resampled onto T1's grid through their affines
    t1 = nib.load(subject["image"][0])
    assert ixi.shape == (3, *t1.shape) and np.allclose(ixi.affine.numpy(), t1.affine, atol=1e-4)
    assert all(float(ixi[c].std()) > 0 for c in range(3))


# ---- bad input: one line on stderr, exit status 2, nothing written -------------------------------------------

def test_bad_input(capsys, aldm_run, tmp_path):
    args = tiny_overrides(BUNDLE, aldm_run, output_dir=str(tmp_path / "out"))
    case = os.path.join(aldm_run["dataset_dir"], "Phantom_000")
    expect_input_error(capsys, BUNDLE, {**args, "inputs": case, "targets": ["t2", "pd"]}, "targets: unknown modality 'pd' (this model knows t1, t1ce, t2, flair)")
    expect_input_error(capsys, BUNDLE, {**args, "inputs": case, "source": "t2", "targets": ["t2"]}, "targets: target 't2' is the source modality")
    nib.save(nib.Nifti1Image(np.ones((32, 32, 2), np.float32), np.eye(4)), str(tmp_path / "thin.nii.gz"))
    expect_input_error(capsys, BUNDLE, {**args, "inputs": str(tmp_path / "thin.nii.gz")},
                       "thin.nii.gz: volume 32x32x2 is smaller than the network's downsampling factor 4 along a side")
    nib.save(nib.Nifti1Image(np.ones((32, 32, 32, 2), np.float32), np.eye(4)), str(tmp_path / "two.nii.gz"))
    expect_input_error(capsys, BUNDLE, {**args, "inputs": str(tmp_path / "two.nii.gz")}, "two.nii.gz: expected 1 channel per modality file, found 2")
    expect_input_error(capsys, BUNDLE, {**args, "inputs": case, "ckpt_dir": str(tmp_path / "none")}, "autoencoder.pt: autoencoder checkpoint not found")
    assert not os.path.exists(tmp_path / "out")


def test_existing_outputs_are_not_overwritten(capsys, aldm_run, tmp_path):
    target = tmp_path / "out" / "Phantom_000"
    target.mkdir(parents=True)
    (target / "keep.txt").write_text("user data")
    case = os.path.join(aldm_run["dataset_dir"], "Phantom_000")
    expect_input_error(capsys, BUNDLE, tiny_overrides(BUNDLE, aldm_run, inputs=case, output_dir=str(tmp_path / "out")), "output folder exists and is not empty")
    assert os.listdir(target) == ["keep.txt"]


# ---- configs --------------------------------------------------------------------------------------------------

def _parser(config, **overrides):
    parser = ConfigParser()
    parser.read_config(os.path.join(CONFIGS, config))
    parser.update(overrides)
    parser.parse()
    return parser


def test_paper_defaults():
    for config in ("train_autoencoder.json", "train_spade.json", "train_diffusion.json", "inference.json", "evaluate.json"):
        p = _parser(config)
        assert p.get_parsed_content("roi_size") == [192, 192, 144] and p.get_parsed_content("downsample_factor") == 4
        assert p.get_parsed_content("embedding_dim") == 3 and p.get_parsed_content("num_embeddings") == 8192
    p = _parser("train_diffusion.json")
    scheduler = p.get_parsed_content("scheduler")
    assert scheduler.num_train_timesteps == 1000
    assert float(scheduler.betas[0]) == pytest.approx(0.0015) and float(scheduler.betas[-1]) == pytest.approx(0.0195)
    assert p.get_parsed_content("learning_rate") == 2e-6 and p["optimizer"]["_target_"] == "torch.optim.AdamW"
    unet = p["network_def"]
    assert unet["with_conditioning"] is True and p.get_parsed_content("network_def#cross_attention_dim") == 4
    assert p.get_parsed_content("unet_channels") == [128, 256, 512]


def test_configs_describe_the_same_networks():
    _, recipe = load_recipe(BUNDLE)
    small = recipe["tiny"]["overrides"]
    keys = {"autoencoder": [("train_autoencoder.json", "network_def"), ("train_spade.json", "autoencoder_def"),
                            ("train_diffusion.json", "autoencoder_def"), ("inference.json", "autoencoder_def"), ("evaluate.json", "autoencoder_def")],
            "spade": [("train_spade.json", "network_def"), ("train_diffusion.json", "spade_def"), ("inference.json", "spade_def"),
                      ("evaluate.json", "spade_def")],
            "unet": [("train_diffusion.json", "network_def"), ("inference.json", "network_def"), ("evaluate.json", "network_def")]}
    for name, places in keys.items():
        shapes = [{k: v.shape for k, v in _parser(c, **small).get_parsed_content(key).state_dict().items()} for c, key in places]
        assert all(s == shapes[0] for s in shapes[1:]), name


def test_monai_workflow_properties(aldm_run):
    from monai.bundle import ConfigWorkflow

    for config in ("train_autoencoder.json", "train_spade.json", "train_diffusion.json"):
        assert verify.missing_properties(BUNDLE, config, tiny_overrides(BUNDLE, aldm_run, config)) == [], config
    # inference: a runner, not a MONAI evaluator over a dataset (docs: `dataset` and `evaluator` are absent)
    workflow = ConfigWorkflow(config_file=[os.path.join(CONFIGS, "inference.json"), os.path.join(CONFIGS, "demo.json")],
                              meta_file=os.path.join(CONFIGS, "metadata.json"), workflow_type="infer", **tiny_overrides(BUNDLE, aldm_run))
    workflow.initialize()
    for key in ("bundle_root", "device", "network_def", "inferer", "preprocessing", "postprocessing", "dataset_dir"):
        assert workflow.parser.get_parsed_content(key) is not None, key


def _beside_the_tiny_model(run, tmp_path):
    """``tmp_path/models`` linking the tiny run's three weight files, and overrides that use it and ``tmp_path``."""
    models = tmp_path / "models"
    models.mkdir()
    for name in ("autoencoder.pt", "spade.pt", "model.pt"):
        os.symlink(os.path.join(run["ckpt_dir"], name), models / name)
    return models, tiny_overrides(BUNDLE, run, bundle_root=str(tmp_path), ckpt_dir=str(models))


def test_table3_ablations_train_and_are_evaluated(aldm_run, tmp_path):
    """Table 3 (a) diffusion alone (no conditioning input) and (b) Palette-style source latents as input: each
    overlay trains its own diffusion model next to ALDM's, then every method is evaluated on T1 -> T2."""
    from monai.bundle import run as bundle_run

    _, recipe = load_recipe(BUNDLE)
    models, common = _beside_the_tiny_model(aldm_run, tmp_path)
    (models / "spade.pt").unlink()  # neither ablation trains with MS-SPADE: none is loaded
    for ablation, name in (("palette", "diffusion_palette"), ("diffusion_only", "diffusion_only")):
        files = [os.path.join(CONFIGS, c) for c in ("train_diffusion.json", f"ablation_{ablation}.json", "demo.json")]
        bundle_run(config_file=files, **common, **recipe["tiny"]["steps"]["train_diffusion.json"])
        assert (models / f"{name}.pt").is_file() and (tmp_path / "runs" / name / "checkpoint_iteration=2.pt").is_file()
    os.symlink(os.path.join(aldm_run["ckpt_dir"], "spade.pt"), models / "spade.pt")
    methods = ["aldm", "palette", "diffusion_only", "spade_only", "identity"]
    bundle_run(config_file=[os.path.join(CONFIGS, "evaluate.json"), os.path.join(CONFIGS, "demo.json")],
               **{**common, "sources": ["t1"], "targets": ["t2"], "methods": methods})
    rows = json.load(open(tmp_path / "eval" / "metrics.json"))["rows"]
    assert [r["method"] for r in rows] == methods and all(np.isfinite(r["psnr"]) for r in rows)


def test_table3_kl_autoencoder_runs_all_stages_beside_the_vq_model(aldm_run, tmp_path):
    """Table 3 (d): the same three stages on an AutoencoderKL (KL term instead of quantisation), written under their
    own names next to the VQ model's files, then evaluated."""
    from monai.bundle import run as bundle_run

    from medi2i.engines.aldm import kl_loss

    assert kl_loss(torch.zeros(2, 3, 4, 4, 4), torch.ones(2, 3, 4, 4, 4)) == 0
    assert kl_loss(torch.ones(1, 3, 2, 2, 2), torch.ones(1, 3, 2, 2, 2)) == pytest.approx(0.5 * 24)
    _, recipe = load_recipe(BUNDLE)
    models, common = _beside_the_tiny_model(aldm_run, tmp_path)
    vq_files = {name: (models / name).stat().st_mtime_ns for name in os.listdir(models)}
    for config in ("train_autoencoder.json", "train_spade.json", "train_diffusion.json", "evaluate.json"):
        files = [os.path.join(CONFIGS, c) for c in (config, "ablation_kl.json", "demo.json")]
        bundle_run(config_file=files, **common, **recipe["tiny"]["steps"].get(config, {}))
    assert {f"{n}_kl.pt" for n in ("autoencoder", "spade", "model")} <= set(os.listdir(models))
    assert {n: (models / n).stat().st_mtime_ns for n in vq_files} == vq_files  # the VQ model's files untouched
    assert {"autoencoder", "spade", "diffusion"} <= set(os.listdir(tmp_path / "runs_kl"))
    rows = json.load(open(tmp_path / "eval_kl" / "metrics.json"))["rows"]
    assert {r["method"] for r in rows} == {"aldm", "spade_only", "identity"} and all(np.isfinite(r["ssim"]) for r in rows)


def test_diffusion_alone_sees_no_conditioning_input_and_starts_from_the_noised_source():
    """Table 3 (a): the UNet's conditioning channels are zero in training and sampling; the source enters only as
    the SDEdit-style starting point (same noise, two sources: two outputs)."""
    from monai.networks.nets import DiffusionModelUNet
    from monai.networks.schedulers import DDPMScheduler

    from medi2i.diffusion import LatentTranslationInferer
    from medi2i.engines.aldm import LatentDiffusionPrepareBatch

    class Autoencoder(torch.nn.Module):  # latents = the image repeated on 3 channels, and back
        def encode_stage_2_inputs(self, x):
            return x.repeat(1, 3, 1, 1, 1)

        def decode_stage_2_outputs(self, z):
            return z.mean(1, keepdim=True)

    vqvae = Autoencoder()
    unet = DiffusionModelUNet(spatial_dims=3, in_channels=6, out_channels=3, channels=(8, 8), attention_levels=(False, True),
                              num_res_blocks=1, num_head_channels=8, norm_num_groups=8, with_conditioning=True, cross_attention_dim=4)
    scheduler = DDPMScheduler(1000, schedule="scaled_linear_beta", beta_start=0.0015, beta_end=0.0195)
    inputs, _, _, kwargs = LatentDiffusionPrepareBatch(vqvae, scheduler, condition="none")({"image": torch.rand(2, 4, 8, 8, 8)})
    assert inputs.shape[1] == 6 and not inputs[:, :3].any() and inputs[:, 3:].abs().sum() > 0
    calls = []
    unet.register_forward_pre_hook(lambda module, args, kwargs: calls.append(args[0][:, :3].abs().sum()), with_kwargs=True)
    inferer = LatentTranslationInferer(vqvae, None, scheduler, 4, num_inference_steps=4, method="diffusion_only", source_noise_level=500)
    x = torch.rand(1, 1, 8, 8, 8)
    translate = lambda source: inferer(source, unet, target=2, generator=torch.Generator().manual_seed(0))  # noqa: E731
    out = translate(x)
    assert len(calls) == 2 and all(c == 0 for c in calls)  # DDIM from L = 500, 250 apart: two UNet calls, no condition
    assert out.shape == x.shape and torch.equal(translate(x), out) and not torch.allclose(translate(1 - x), out, atol=1e-4)


def test_aldm_starts_from_pure_noise_unless_given_a_start_noise_level():
    """The paper samples from pure noise; ``start_noise_level`` L starts DDIM from the MS-SPADE latents noised to L
    instead, so a low L stays near MS-SPADE's own output and the steps shrink to L // stride."""
    from monai.networks.schedulers import DDPMScheduler

    from medi2i.diffusion import LatentTranslationInferer

    class Autoencoder(torch.nn.Module):  # latents = the image repeated on 3 channels, and back
        def encode_stage_2_inputs(self, x):
            return x.repeat(1, 3, 1, 1, 1)

        def decode_stage_2_outputs(self, z):
            return z.mean(1, keepdim=True)

    class ZeroEps(torch.nn.Module):  # predicts no noise and records its calls
        calls = 0

        def forward(self, x, timesteps, context=None):
            self.calls += 1
            return torch.zeros_like(x[:, 3:])

    spade = MSSPADENetwork(**TINY_SPADE).eval()
    scheduler = DDPMScheduler(1000, schedule="scaled_linear_beta", beta_start=0.0015, beta_end=0.0195)
    x = torch.rand(1, 1, 8, 8, 8)

    def translate(method, level=None):
        unet = ZeroEps()
        inferer = LatentTranslationInferer(Autoencoder(), spade, scheduler, 4, num_inference_steps=10, method=method,
                                           start_noise_level=level)
        return inferer(x, unet, target=1, generator=torch.Generator().manual_seed(0)), unet.calls

    reference, _ = translate("spade_only")
    (paper, paper_calls), (near, near_calls) = translate("aldm"), translate("aldm", 20)
    assert paper_calls == 10 and near_calls == 1  # DDIM 100 apart: from T ten steps, from L = 20 one
    assert (near - reference).abs().mean() < 0.1 * (paper - reference).abs().mean()


def test_stage3_validation_batches_are_the_same_at_every_run_and_cover_every_pair():
    """The validation loss compares checkpoints, not draws: each volume gives all 12 off-diagonal (source, target)
    pairs once, at timesteps spread over [0, T), with the same noise at every call whatever the global RNG does."""
    from monai.networks.schedulers import DDPMScheduler

    from medi2i.engines.aldm import FixedLatentDiffusionBatch

    class Autoencoder(torch.nn.Module):  # latents = the image repeated on 3 channels
        def encode_stage_2_inputs(self, x):
            return x.repeat(1, 3, 1, 1, 1)

    scheduler = DDPMScheduler(1000, schedule="scaled_linear_beta", beta_start=0.0015, beta_end=0.0195)
    prepare = FixedLatentDiffusionBatch(Autoencoder(), scheduler, condition="source", seed=3)
    images = torch.rand(2, 4, 4, 4, 4)
    inputs, noise, _, kwargs = prepare({"image": images})
    torch.rand(5)  # the global RNG moves on between validation runs
    again = prepare({"image": images})
    assert torch.equal(again[0], inputs) and torch.equal(again[1], noise) and torch.equal(again[3]["timesteps"], kwargs["timesteps"])
    assert inputs.shape == (24, 6, 4, 4, 4)
    targets = kwargs["context"][:, 0].argmax(1)
    timesteps = kwargs["timesteps"]
    for volume in range(2):
        rows = range(12 * volume, 12 * volume + 12)
        found = set()
        for k in rows:  # the condition channels are the source modality of this volume
            (source,) = [m for m in range(4) if torch.equal(inputs[k, 0], images[volume, m])]
            found.add((source, int(targets[k])))
        assert found == {(s, t) for s in range(4) for t in range(4) if s != t}
        assert sorted(timesteps[list(rows)].tolist()) == [int((k + 0.5) * 1000 / 12) for k in range(12)]
    # and stage 3's evaluator uses these batches (the trainer keeps the random ones)
    config = ConfigParser()
    config.read_config(os.path.join(CONFIGS, "train_diffusion.json"))
    assert config["validate"]["evaluator"]["prepare_batch"] == "@validate#prepare_batch"
    assert config["validate"]["prepare_batch"]["_target_"].endswith(".FixedLatentDiffusionBatch")
    assert config["validate"]["prepare_batch"]["seed"] == "@seed"
    assert config["train"]["trainer"]["prepare_batch"] == "@prepare_batch"
    assert config["prepare_batch"]["_target_"].endswith(".LatentDiffusionPrepareBatch")


def test_v_prediction_trains_on_the_velocity_and_ddim_recovers_the_noise_from_it():
    """With ``prediction_type: "v_prediction"`` stage 3 regresses v = √ᾱ ε − √(1−ᾱ) z_0 instead of ε, and DDIM turns
    a network's v back into ε: an oracle that returns the true velocity gives back exactly the noise that was added,
    and one DDIM step to t = 0 lands on the clean latents. Other prediction types are a one-line error."""
    from monai.networks.schedulers import DDPMScheduler

    from medi2i.diffusion import DDIMSampler
    from medi2i.engines.aldm import FixedLatentDiffusionBatch
    from medi2i.errors import InputError

    class Autoencoder(torch.nn.Module):  # latents = the image repeated on 3 channels
        def encode_stage_2_inputs(self, x):
            return x.repeat(1, 3, 1, 1, 1)

    scheduler = DDPMScheduler(1000, schedule="scaled_linear_beta", beta_start=0.0015, beta_end=0.0195,
                              prediction_type="v_prediction")
    images = torch.rand(1, 4, 4, 4, 4)
    inputs, velocity, _, kwargs = FixedLatentDiffusionBatch(Autoencoder(), scheduler, condition="source")({"image": images})
    eps_batch = FixedLatentDiffusionBatch(Autoencoder(), DDPMScheduler(1000, schedule="scaled_linear_beta", beta_start=0.0015,
                                                                       beta_end=0.0195), condition="source")
    _, noise, _, _ = eps_batch({"image": images})  # the same fixed noise, as an ε target
    z_t, t = inputs[:, 3:], kwargs["timesteps"]
    abar = scheduler.alphas_cumprod[t].reshape(-1, 1, 1, 1, 1)
    z_0 = (z_t - (1 - abar).sqrt() * noise) / abar.sqrt()
    assert torch.allclose(velocity, abar.sqrt() * noise - (1 - abar).sqrt() * z_0, atol=1e-5)
    assert not torch.allclose(velocity, noise, atol=1e-2)

    class Oracle(torch.nn.Module):  # returns the true velocity of z_t
        def forward(self, x, timesteps):
            return velocity

    assert torch.allclose(DDIMSampler(scheduler).epsilon(Oracle(), z_t, t), noise, atol=1e-4)
    k = 5  # one DDIM step from pair k's own level (paper timestep t_k + 1) to 0
    velocity = velocity[k : k + 1]
    one_step = DDIMSampler(scheduler, noise_level=int(t[k]) + 1, stride=1000)
    assert torch.allclose(one_step.decode(Oracle(), z_t[k : k + 1]), z_0[k : k + 1], atol=1e-4)
    with pytest.raises(InputError, match="prediction_type"):
        DDIMSampler(DDPMScheduler(10, prediction_type="sample"), noise_level=10).check()
