"""The pooled encoder heads of the guidance networks."""

import pytest
import torch
from monai.networks.nets.diffusion_model_unet import DiffusionModelEncoder

from medi2i.networks import PooledDiffusionModelEncoder

SMALL = dict(channels=[8, 16], attention_levels=[False, True], num_res_blocks=1, num_head_channels=8, norm_num_groups=8)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("pool", ["attention", "adaptive", "flatten"])
def test_heads_give_one_value_per_sample(spatial_dims, pool):
    shape = (16,) * spatial_dims
    net = PooledDiffusionModelEncoder(spatial_dims, 2, 3, input_shape=shape, pool=pool, pool_head_channels=8, **SMALL)
    out = net(torch.rand(4, 2, *shape), timesteps=torch.tensor([0, 10, 100, 999]))
    assert out.shape == (4, 3) and torch.isfinite(out).all()


def test_flatten_is_monais_encoder():
    monai_net = DiffusionModelEncoder(2, 2, 1, input_shape=(16, 16), **SMALL).eval()
    ours = PooledDiffusionModelEncoder(2, 2, 1, input_shape=(16, 16), pool="flatten", **SMALL).eval()
    ours.load_state_dict(monai_net.state_dict())
    x, t = torch.rand(2, 2, 16, 16), torch.tensor([3, 7])
    assert torch.equal(ours(x, timesteps=t), monai_net(x, timesteps=t))


def test_input_norm_makes_the_output_blind_to_each_channels_level_and_scale():
    """With ``input_norm`` a per-channel gain and offset of the input (a brighter or dimmer FLAIR) leaves the output
    unchanged, so guidance through it cannot move a channel's global level; without it the output follows them."""
    x, t = torch.rand(2, 2, 16, 16), torch.tensor([0, 500])
    gain, offset = torch.tensor([0.7, 1.3]).view(1, 2, 1, 1), torch.tensor([0.2, -0.1]).view(1, 2, 1, 1)
    for input_norm, same in ((True, True), (False, False)):
        torch.manual_seed(0)
        net = PooledDiffusionModelEncoder(2, 2, 1, input_shape=(16, 16), pool_head_channels=8, input_norm=input_norm, **SMALL).eval()
        with torch.no_grad():
            change = (net(x * gain + offset, timesteps=t) - net(x, timesteps=t)).abs().max().item()
        assert (change < 1e-4) == same, (input_norm, change)


def test_attention_pooled_regressor_learns_an_area_fraction():
    """Trained briefly on random squares, the regressor predicts the bright fraction of unseen images."""
    def batch(n, gen):
        sizes = torch.randint(2, 12, (n,), generator=gen)
        x = torch.zeros(n, 1, 16, 16)
        for k, s in enumerate(sizes.tolist()):
            r, c = torch.randint(0, 17 - s, (2,), generator=gen).tolist()
            x[k, 0, r : r + s, c : c + s] = 1
        return x, (sizes.float() ** 2 / 256).unsqueeze(1)

    torch.manual_seed(0)
    net = PooledDiffusionModelEncoder(2, 1, 1, input_shape=(16, 16), pool="attention", pool_head_channels=8, **SMALL)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    gen, test_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    x_test, y_test = batch(64, test_gen)
    t_test = torch.zeros(64, dtype=torch.long)
    before = torch.mean((net(x_test, timesteps=t_test) - y_test) ** 2).item()
    for _ in range(150):
        x, y = batch(32, gen)
        loss = torch.mean((net(x, timesteps=torch.zeros(32, dtype=torch.long)) - y) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = torch.mean((net(x_test, timesteps=t_test) - y_test) ** 2).item()
    assert after < 0.1 * before and after < 0.1 * y_test.var().item()
