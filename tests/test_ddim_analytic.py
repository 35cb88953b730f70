"""Sampler maths checked exactly with the analytic noise predictor of Gaussian data (no training)."""

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from medi2i import InputError
from medi2i.diffusion import DDIMSampler, GaussianEpsilon, GaussianPosteriorMeanRegressor, RegressionGuidance

MU, SD = 0.3, 0.2


@pytest.fixture
def setup():
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    x0 = MU + SD * torch.randn(16, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    return scheduler, GaussianEpsilon(scheduler, MU, SD), x0


def test_encode_decode_reconstructs_with_error_shrinking_in_steps(setup):
    scheduler, eps, x0 = setup
    errors = []
    for stride in (50, 10, 1):
        sampler = DDIMSampler(scheduler, noise_level=400, stride=stride)
        errors.append((sampler.decode(eps, sampler.encode(eps, x0)) - x0).abs().mean().item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01 * SD * 10  # stride 1: mean error below 0.02


def test_encoding_reaches_the_noisy_marginal(setup):
    scheduler, eps, x0 = setup
    x0 = MU + SD * torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    xl = DDIMSampler(scheduler, noise_level=400, stride=1).encode(eps, x0)
    abar = scheduler.alphas_cumprod[399].item()
    assert xl.mean().item() == pytest.approx(abar**0.5 * MU, abs=0.01)
    assert xl.std().item() == pytest.approx((abar * SD**2 + 1 - abar) ** 0.5, rel=0.02)


def test_zero_scale_equals_plain_ddim(setup):
    scheduler, eps, x0 = setup
    sampler = DDIMSampler(scheduler, noise_level=300, stride=10)
    guidance = RegressionGuidance(GaussianPosteriorMeanRegressor(scheduler, MU, SD), gradient_scale=1000.0, fixed_scale=0.0)
    xl = sampler.encode(eps, x0)
    assert torch.equal(sampler.decode(eps, xl, guidance), sampler.decode(eps, xl))


@pytest.mark.parametrize("stride", [1, 10])
def test_guidance_moves_regressor_to_desired_value_from_both_sides(setup, stride):
    scheduler, eps, x0 = setup
    regressor = GaussianPosteriorMeanRegressor(scheduler, MU, SD)
    sampler = DDIMSampler(scheduler, noise_level=400, stride=stride)
    t0 = torch.zeros(x0.shape[0], dtype=torch.long)
    start = regressor(x0, t0).mean().item()
    for desired in (0.0, 0.6):  # below and above the input's value (about 0.3)
        results = []
        for c in (256.0, 256_000.0):
            out = sampler.translate(eps, x0, RegressionGuidance(regressor, gradient_scale=c, desired_value=desired))
            results.append(regressor(out, t0).reshape(-1))
        weak, strong = results
        assert (weak - desired).abs().mean() < abs(start - desired)  # moves towards i
        assert (strong - desired).abs().max() < 0.02  # and settles near it
        assert not torch.allclose(strong, weak)


def test_fixed_scale_sign_sets_direction(setup):
    scheduler, eps, x0 = setup
    regressor = GaussianPosteriorMeanRegressor(scheduler, MU, SD)
    sampler = DDIMSampler(scheduler, noise_level=400, stride=10)
    t0 = torch.zeros(x0.shape[0], dtype=torch.long)
    base = regressor(sampler.translate(eps, x0), t0)
    up = regressor(sampler.translate(eps, x0, RegressionGuidance(regressor, 2560.0, fixed_scale=1.0)), t0)
    down = regressor(sampler.translate(eps, x0, RegressionGuidance(regressor, 2560.0, fixed_scale=-1.0)), t0)
    assert (up > base).all() and (down < base).all()


def test_per_sample_targets_in_one_batch_equal_separate_runs(setup):
    scheduler, eps, x0 = setup
    regressor = GaussianPosteriorMeanRegressor(scheduler, MU, SD)
    sampler = DDIMSampler(scheduler, noise_level=200, stride=20)
    guidance = RegressionGuidance(regressor, gradient_scale=5000.0)
    x = x0[:2].repeat(2, 1, 1, 1)
    desired = torch.tensor([0.1, 0.1, float("nan"), float("nan")])
    fixed = torch.tensor([float("nan"), float("nan"), -1.0, -1.0])
    mixed = sampler.translate(eps, x, guidance, desired_value=desired, fixed_scale=fixed)
    alone_i = sampler.translate(eps, x0[:2], guidance, desired_value=0.1)
    alone_s = sampler.translate(eps, x0[:2], guidance, fixed_scale=-1.0)
    assert torch.allclose(mixed[:2], alone_i, atol=1e-5) and torch.allclose(mixed[2:], alone_s, atol=1e-5)


def test_decode_matches_monai_ddim_step_with_every_timestep(setup):
    scheduler, eps, x0 = setup
    monai = DDIMScheduler(num_train_timesteps=1000, clip_sample=False)
    monai.set_timesteps(1000)
    ours = DDIMSampler(scheduler, noise_level=50, stride=1)
    xl = torch.randn_like(x0)
    expected = xl
    for k in range(49, -1, -1):  # MONAI timestep k is our paper timestep k + 1
        expected, _ = monai.step(eps(expected, torch.full((x0.shape[0],), k)), k, expected)
    assert torch.allclose(ours.decode(eps, xl), expected, atol=1e-5)


def test_encode_matches_monai_reversed_step_after_the_first_step(setup):
    scheduler, eps, x0 = setup
    monai = DDIMScheduler(num_train_timesteps=1000, clip_sample=False)
    monai.set_timesteps(1000)
    x1 = DDIMSampler(scheduler, noise_level=1).encode(eps, x0)
    expected = x1
    for k in range(0, 49):
        expected, _ = monai.reversed_step(eps(expected, torch.full((x0.shape[0],), k)), k, expected)
    assert torch.allclose(DDIMSampler(scheduler, noise_level=50).encode(eps, x0), expected, atol=1e-5)


def test_stochastic_decoding_is_seeded(setup):
    scheduler, eps, x0 = setup
    sampler = DDIMSampler(scheduler, noise_level=200, stride=20, eta=1.0)
    xl = sampler.encode(eps, x0)
    a = sampler.decode(eps, xl, generator=torch.Generator().manual_seed(3))
    b = sampler.decode(eps, xl, generator=torch.Generator().manual_seed(3))
    c = sampler.decode(eps, xl, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.allclose(a, c)


class _LinearRegressor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(256, 1)

    def forward(self, x, timesteps):
        return self.linear(x.flatten(1))


def test_guidance_network_is_frozen_and_gradient_is_wrt_input_only(setup):
    _, _, x0 = setup
    net = _LinearRegressor()
    guidance = RegressionGuidance(net, gradient_scale=10.0, desired_value=1.0)
    g = guidance(x0, torch.zeros(16, dtype=torch.long))
    assert all(not p.requires_grad and p.grad is None for p in net.parameters())
    s = 1.0 - net(x0, None).detach()
    assert torch.allclose(g, 10.0 * s.view(-1, 1, 1, 1) * net.linear.weight.view(1, 1, 16, 16), atol=1e-5)


def test_bad_sampler_settings_are_one_line_errors(setup):
    scheduler, _, _ = setup
    with pytest.raises(InputError, match="noise_level: L = 1001 must be in 1..T = 1000"):
        DDIMSampler(scheduler, noise_level=1001).check()
    with pytest.raises(InputError, match="stride"):
        DDIMSampler(scheduler, noise_level=10, stride=0).encode(torch.nn.Identity(), torch.zeros(1, 1, 4, 4))
