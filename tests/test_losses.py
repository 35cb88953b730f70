"""The Improved-DDPM hybrid loss."""

import torch
from monai.networks.schedulers import DDPMScheduler

from medi2i.engines import HybridDiffusionLoss


def _batch(t):
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(len(t), 2, 8, 8, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    return {"noise": noise, "images": x0, "timesteps": torch.tensor(t)}


def test_kl_vanishes_for_true_noise_and_posterior_variance():
    loss = HybridDiffusionLoss(DDPMScheduler(num_train_timesteps=1000))
    target = _batch([5, 300, 999])
    v_posterior = -torch.ones_like(target["noise"])  # v = -1 selects log beta~_t
    pred = torch.cat([target["noise"], v_posterior], 1)
    assert torch.allclose(loss.vlb_term(pred, target["noise"], target["images"], target["timesteps"]), torch.zeros(3), atol=1e-4)
    assert loss(pred, target).item() < 1e-4
    early = _batch([1, 2, 5])
    worse = loss.vlb_term(torch.cat([early["noise"], torch.ones_like(v_posterior)], 1), early["noise"], early["images"], early["timesteps"])
    assert (worse > 1e-3).all()  # v = +1 (beta_t) is further from the true posterior where beta_t and beta~_t differ


def test_vlb_term_trains_only_the_variance_and_mse_only_the_noise():
    loss = HybridDiffusionLoss(DDPMScheduler(num_train_timesteps=1000))
    target = _batch([0, 10, 500])
    pred = torch.randn(3, 4, 8, 8, requires_grad=True)
    loss.vlb_term(pred, target["noise"], target["images"], target["timesteps"]).sum().backward()
    assert pred.grad[:, :2].abs().sum() == 0 and pred.grad[:, 2:].abs().sum() > 0


def test_without_variance_channels_it_is_the_noise_mse():
    loss = HybridDiffusionLoss(DDPMScheduler(num_train_timesteps=1000))
    target = _batch([1, 2])
    pred = torch.randn_like(target["noise"])
    expected = torch.mean((pred - target["noise"]) ** 2)
    assert torch.allclose(loss(pred, target), expected) and torch.allclose(loss(pred, target["noise"]), expected)
