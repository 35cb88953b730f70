"""Fast path: encoding once per case, no reads from the device inside sampling loops, noise on the generator's
device, speed flags that keep outputs and checkpoints, and the benchmark command of the README."""

import os
import subprocess
import sys

import pytest
import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from conftest import GROWTH, ROOT
from medi2i.benchmark import benchmark_against_monai
from medi2i.diffusion import (ClassConditionalSampler, ConditionalSampler, DDIMSampler, GaussianEpsilon,
                              GuidedTranslationInferer, RegressionGuidance)
from medi2i.diffusion import conditional
from medi2i.diffusion.acceleration import accelerated, bf16_weights
from medi2i.diffusion.ddim import StepCoefficients
from medi2i.networks import PooledDiffusionModelEncoder
from medi2i.workflows import GuidedTranslation


def unet(**kwargs):
    defaults = dict(spatial_dims=2, in_channels=2, out_channels=2, channels=(8, 16), attention_levels=(False, True),
                    num_res_blocks=1, norm_num_groups=8, num_head_channels=8)
    return DiffusionModelUNet(**{**defaults, **kwargs}).eval()


def regressor():
    return PooledDiffusionModelEncoder(2, 2, 1, input_shape=(16, 16), channels=(8, 16), attention_levels=(False, True),
                                       num_res_blocks=1, norm_num_groups=8, num_head_channels=8, pool_head_channels=8)


def growth_inferer(noise_level=100, stride=20):
    return GuidedTranslationInferer(DDIMSampler(DDIMScheduler(1000, clip_sample=False), noise_level, stride),
                                    RegressionGuidance(regressor(), gradient_scale=100.0))


TARGETS = {"desired_value": torch.tensor([0.0, 0.5, float("nan")] * 2), "fixed_scale": torch.tensor([float("nan"), float("nan"), 1.0] * 2)}


def test_encoding_once_per_case_gives_the_per_target_output():
    net, inferer = unet(), growth_inferer()
    x = torch.rand(2, 2, 16, 16)
    once = inferer(x, net, repeats=3, **TARGETS)
    assert inferer.sampler.network_evaluations == 2 * 5 + 6 * 5  # 2 encodings, 6 decodings of 5 steps
    per_target = inferer(x.repeat_interleave(3, 0), net, **TARGETS)
    torch.testing.assert_close(once, per_target, rtol=0, atol=1e-6)


def test_workflow_encodes_once_per_case_and_uncertainty_sample_set():
    class Counting(GuidedTranslationInferer):
        encodings = 0

        def encode(self, inputs, network):
            Counting.encodings += inputs.shape[0]
            return super().encode(inputs, network)

    net = unet()
    inferer = Counting(DDIMSampler(DDIMScheduler(1000, clip_sample=False), 60, 20, eta=1.0), RegressionGuidance(regressor(), 100.0))
    workflow = GuidedTranslation(None, "unused", net, inferer, [], uncertainty_samples=3)
    translate = workflow._translator(torch.rand(2, 2, 16, 16), 3, dict(TARGETS))
    out = translate()
    spread = workflow._uncertainty(out, translate)
    assert Counting.encodings == 2 and out.shape == (6, 2, 16, 16) and spread["std"].shape == out.shape


def _count_reads(monkeypatch) -> dict:
    """Count the Tensor methods that read a value back to the host (a sync on CUDA)."""
    counts = {"n": 0}
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            counts["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


@pytest.mark.parametrize("kind", ["guided", "classifier_free", "conditional"])
def test_sampling_loops_read_nothing_back_per_step(monkeypatch, kind):
    """The number of host reads does not grow with the number of steps (CUDA's sync debug mode is not available on
    the CPU); the schedule coefficients are Python floats."""
    x = torch.rand(2, 2, 16, 16)
    net, reg = unet(num_class_embeds=3), regressor()

    def run(steps):
        if kind == "guided":
            inferer = GuidedTranslationInferer(DDIMSampler(DDIMScheduler(1000, clip_sample=False), 10 * steps, 10),
                                               RegressionGuidance(reg, 100.0))
            inferer(x, unet_plain, repeats=3, **TARGETS)
        elif kind == "classifier_free":
            ClassConditionalSampler(DDIMScheduler(1000), steps, eta=1.0).sample(
                net, x, torch.tensor([0, 1]), torch.tensor([0.0, 2.0]), 2, generator=torch.Generator().manual_seed(0))
        else:
            ConditionalSampler(DDPMScheduler(1000), "ddim", steps, eta=1.0, out_channels=1)(
                unet_conditional, x, torch.Generator().manual_seed(0))

    unet_plain, unet_conditional = unet(), unet(in_channels=3, out_channels=1)
    run(2)  # first-call work (weights loaded, lazy inits) is not counted
    counts = _count_reads(monkeypatch)
    run(2)
    few = counts["n"]
    run(10)
    assert counts["n"] - few == few
    assert all(isinstance(v, float) for c in DDIMSampler(DDIMScheduler(1000), 400, 10, eta=0.5).steps("decode")
               for k, v in vars(c).items() if k not in ("t", "s"))


def test_stochastic_noise_is_drawn_on_the_generator_device(monkeypatch):
    """A CPU generator with data on another device (CUDA in practice, 'meta' here): the noise is drawn where the
    generator is and moved (torch.randn refuses a generator of another device on CUDA; emulated here)."""
    randn = torch.randn

    def strict_randn(*args, generator=None, device=None, **kwargs):
        if generator is not None and torch.device(device or "cpu") != generator.device:
            raise RuntimeError(f"Expected a '{torch.device(device).type}' device type for generator")
        return randn(*args, generator=generator, device=device, **kwargs)

    monkeypatch.setattr(torch, "randn", strict_randn)
    scheduler = DDPMScheduler(1000)
    x = torch.zeros(2, 1, 4, 4, device="meta")
    out = DDIMSampler(scheduler, 100, 20, eta=1.0).decode(lambda x, timesteps: torch.zeros_like(x), x,
                                                           generator=torch.Generator().manual_seed(0))
    assert out.device.type == "meta"
    # same numbers as with the data on the generator's device
    eps = GaussianEpsilon(scheduler, 0.3, 0.2)
    xl = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    a = DDIMSampler(scheduler, 100, 20, eta=1.0).decode(eps, xl, generator=torch.Generator().manual_seed(0))
    b = DDIMSampler(scheduler, 100, 20, eta=1.0).decode(eps, xl, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_conditional_ddim_sampler_honours_amp(monkeypatch):
    seen = []

    class Recording(DDIMSampler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self.amp)

    monkeypatch.setattr(conditional, "DDIMSampler", Recording)
    ConditionalSampler(DDPMScheduler(1000), "ddim", 10, out_channels=1, amp=True)(unet(in_channels=3, out_channels=1), torch.rand(1, 2, 16, 16))
    assert seen == [True]


def test_speed_flags_keep_state_dicts_and_outputs():
    torch.manual_seed(0)
    plain, flash = unet(), unet(use_flash_attention=True)
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in flash.state_dict().items()}
    flash.load_state_dict(plain.state_dict())
    x, t = torch.rand(3, 2, 16, 16), torch.tensor([0, 500, 999])
    with torch.no_grad():
        expected = plain(x, timesteps=t)
        torch.testing.assert_close(flash(x, timesteps=t), expected, rtol=1e-4, atol=1e-5)
        fast = accelerated(unet(), x, channels_last=True)
        fast.load_state_dict(plain.state_dict())  # a channels-last network loads an ordinary checkpoint
        torch.testing.assert_close(fast(x.contiguous(memory_format=torch.channels_last), timesteps=t), expected, rtol=1e-4, atol=1e-5)
        compiled = accelerated(plain, x, compile={"backend": "eager"})
        assert compiled is accelerated(plain, x, compile={"backend": "eager"})  # built once
        torch.testing.assert_close(compiled(x, timesteps=t), expected)
    assert accelerated(plain, x, amp=True) is plain  # bf16 only on CUDA
    half = bf16_weights(plain)
    assert half.conv_in.conv.weight.dtype == torch.bfloat16 and half.down_blocks[0].resnets[0].norm1.weight.dtype == torch.float32
    assert plain.conv_in.conv.weight.dtype == torch.float32


def test_step_coefficients_match_the_schedule():
    abar = [1.0] + DDIMScheduler(1000).alphas_cumprod.double().tolist()
    c = StepCoefficients.between(abar, 400, 390, eta=1.0)
    a, a_prev = abar[400], abar[390]
    assert c.sigma == pytest.approx(((1 - a_prev) / (1 - a) * (1 - a / a_prev)) ** 0.5)
    assert c.direction == pytest.approx((1 - a_prev - c.sigma**2) ** 0.5)
    assert StepCoefficients.between(abar, 390, 400, eta=1.0).sigma == 0.0  # encoding is deterministic


TINY = {"image_size": 32, "norm_num_groups": 8, "ddpm_channels": [8, 16], "ddpm_attention_levels": [False, True],
        "regressor_channels": [8, 16], "regressor_attention_levels": [False, True], "regressor_num_head_channels": 8}


def test_benchmark_command_of_the_readme_runs_from_a_fresh_clone():
    """tools/benchmark.py as README.md shows it, from the repository root (no models/regressor.pt there), with
    tiny overrides that must reach the config."""
    assert not os.path.exists(os.path.join(GROWTH, "models", "regressor.pt"))
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "common"), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "tools/benchmark.py", "bundles/brats_mri_tumor_growth_regression_guidance", "--strides", "[10]",
            "--noise_level", "20", "--overrides", repr(TINY)]
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| 32 |" in result.stdout  # the image_size override reached the config


def test_benchmark_against_plain_monai_loop():
    rows = benchmark_against_monai(GROWTH, overrides={**TINY, "noise_level": 40, "stride": 10}, weights=None, repeats=1,
                                   variants=({}, {"channels_last": True}), extrapolate_steps=2)
    assert [r["flags"] for r in rows] == ["config defaults", "channels_last=True"]
    for row in rows:
        assert row["targets"] == 6 and row["timed_steps"] == "2 of 4 each way (extrapolated)"
        assert row["project_unet_evaluations_per_image"] == pytest.approx(4 / 6 + 4, abs=0.05)  # encoded once for 6 targets
        assert row["monai_unet_evaluations_per_image"] == 8
        assert row["speedup"] == pytest.approx(row["monai_s_per_image"] / row["project_s_per_image"], rel=0.02)
