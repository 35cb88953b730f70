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
