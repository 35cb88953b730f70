"""Segmentation and classifier guidance: exact gradients, frozen networks, masks, and behaviour on phantoms with
exact (analytic) diffusion and guidance models."""

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.networks.schedulers import DDPMScheduler
from torch import nn

from medi2i import InputError
from medi2i.data import DesiredMask, make_phantom
from medi2i.diffusion import ClassifierGuidance, DDIMSampler, GuidedTranslationInferer, SegmentationGuidance
from medi2i.diffusion.analytic_images import GaussianImagePrior, ThresholdClassifier, ThresholdSegmenter
from medi2i.metrics import dilate


class PixelLogits(nn.Module):
    """logits = w * x[:, 3] + b (time-independent): dH/dx is analytic."""

    def __init__(self, w=2.0, b=-1.0):
        super().__init__()
        self.w, self.b = nn.Parameter(torch.tensor(w)), nn.Parameter(torch.tensor(b))

    def forward(self, x, timesteps):
        return self.w * x[:, 3:4] + self.b


def test_segmentation_guidance_is_minus_c_times_grad_of_mean_bce():
    x = torch.rand(2, 4, 8, 8)
    z = (torch.rand(2, 1, 8, 8) > 0.5).float()
    net = PixelLogits()
    guidance = SegmentationGuidance(net, gradient_scale=5.0)
    g = guidance(x, torch.tensor([3, 7]), mask=z)
    s = torch.sigmoid(2.0 * x[:, 3:4] - 1.0)
    expected = torch.zeros_like(x)
    expected[:, 3:4] = -5.0 * (s - z) * 2.0 / 64  # H = mean over P = 64 pixels of the BCE
    assert torch.allclose(g, expected, atol=1e-6)
    h = -(z * torch.log(s) + (1 - z) * torch.log(1 - s)).flatten(1).mean(1)  # the paper's H, written out
    assert torch.allclose(guidance.last_value, h, atol=1e-5)
    assert all(not p.requires_grad and p.grad is None for p in net.parameters())  # frozen: gradient w.r.t. x_t only
    # moving x along g lowers H
    t = torch.tensor([3, 7])
    assert (guidance.cross_entropy(x + 0.01 * g, t, z) < guidance.cross_entropy(x, t, z)).all()


def test_classifier_guidance_is_s_times_grad_log_p():
    x = torch.rand(3, 4, 6, 6)

    class Linear(nn.Module):
        def forward(self, x, timesteps):
            m = x.flatten(1).mean(1)
            return torch.stack([-m, m], 1)

    g = ClassifierGuidance(Linear(), gradient_scale=10.0)(x, torch.zeros(3, dtype=torch.long), target_class=[0, 1, 0])
    m = x.flatten(1).mean(1)
    p1 = torch.softmax(torch.stack([-m, m], 1), 1)[:, 1]
    sign = torch.tensor([-1.0, 1.0, -1.0])
    # d/dx log p(y) = (1 - p_y) * d(l_y - l_other)/dx = (1 - p_y) * (+-2 / N)
    p_y = torch.where(sign > 0, p1, 1 - p1)
    expected = 10.0 * (sign * (1 - p_y) * 2 / x[0].numel()).view(-1, 1, 1, 1).expand_as(x)
    assert torch.allclose(g, expected, atol=1e-6)


def test_guidance_loads_its_checkpoint_once(tmp_path):
    net = PixelLogits(w=0.0, b=0.0)
    torch.save({"model": PixelLogits(w=3.0, b=1.0).state_dict()}, tmp_path / "segmenter.pt")
    guidance = SegmentationGuidance(net, checkpoint=str(tmp_path / "segmenter.pt"))
    x, t, z = torch.rand(1, 4, 4, 4), torch.zeros(1, dtype=torch.long), torch.ones(1, 1, 4, 4)
    guidance(x, t, mask=z)
    assert float(net.w) == 3.0 and not net.w.requires_grad
    torch.save({"model": PixelLogits(w=5.0, b=1.0).state_dict()}, tmp_path / "segmenter.pt")  # a reload would see w = 5
    guidance(x, t, mask=z)
    (tmp_path / "segmenter.pt").unlink()  # ... or fail
    guidance(x, t, mask=z)
    assert float(net.w) == 3.0
    missing = SegmentationGuidance(PixelLogits(), checkpoint=str(tmp_path / "none.pt"))
    with pytest.raises(InputError, match="none.pt: segmenter checkpoint not found"):
        GuidedTranslationInferer(DDIMSampler(DDPMScheduler(1000), 10), missing).load()


# ---- masks -------------------------------------------------------------------------------------------------

def _brain(h=32, w=32):
    brain = torch.zeros(1, h, w, dtype=torch.bool)
    brain[:, 4:28, 6:26] = True
    return brain


def test_blob_mask_is_clipped_to_the_brain_and_centred_by_default():
    z = DesiredMask(centre=[6, 16], radius=4).for_brain(_brain())
    assert z[0, 4, 16] == 1 and z[0, 3, 16] == 0 and z[0, 2, 16] == 0  # rows 2-3 are outside the brain
    centred = DesiredMask(radius=3).for_brain(_brain())
    rows, cols = torch.nonzero(centred[0], as_tuple=True)
    assert rows.float().mean() == pytest.approx(15.5, abs=0.6) and cols.float().mean() == pytest.approx(15.5, abs=0.6)


def test_bad_masks_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match=r"mask lies outside the brain \(0 of its"):
        DesiredMask(centre=[1, 1], radius=1).for_brain(_brain())
    nib.save(nib.Nifti1Image(np.zeros((32, 32), np.uint8), np.eye(4)), str(tmp_path / "empty.nii.gz"))
    with pytest.raises(InputError, match="empty.nii.gz: mask is empty"):
        DesiredMask(str(tmp_path / "empty.nii.gz")).for_brain(_brain())
    nib.save(nib.Nifti1Image(np.ones((20, 32), np.uint8), np.eye(4)), str(tmp_path / "small.nii.gz"))
    with pytest.raises(InputError, match=r"small.nii.gz: mask shape \(20, 32\) differs from the image slice \(32, 32\)"):
        DesiredMask(str(tmp_path / "small.nii.gz")).for_brain(_brain())
    with pytest.raises(InputError, match="missing.png: mask file not found"):
        DesiredMask(str(tmp_path / "missing.png")).for_brain(_brain())


# ---- behaviour on phantoms, exact models -------------------------------------------------------------------

def _phantom_slice(tumour: bool):
    image, seg, truth = make_phantom((48, 48, 16), seed=3, tumour=tumour)
    k = int((seg > 0).sum(axis=(0, 1)).argmax()) if tumour else 8
    return torch.from_numpy(image[..., k]), torch.from_numpy(seg[..., k] > 0)


@pytest.fixture(scope="module")
def exact_models():
    scheduler = DDPMScheduler(num_train_timesteps=1000, schedule="linear_beta", beta_start=1e-4, beta_end=0.02)
    return scheduler, DDIMSampler(scheduler, noise_level=400, stride=20)


def test_inpainting_changes_the_image_inside_the_mask(exact_models):
    """A healthy phantom plus a mask: the tumour-bright FLAIR appears inside the mask, the rest is kept."""
    scheduler, sampler = exact_models
    healthy, _ = _phantom_slice(tumour=False)
    prior = GaussianImagePrior(scheduler, healthy, std=0.3)
    segmenter = ThresholdSegmenter(prior)
    brain = (healthy[3:4] > 0)
    z = DesiredMask(centre=[30, 18], radius=6).for_brain(brain)
    guidance = SegmentationGuidance(segmenter, gradient_scale=5.0 * healthy[0].numel())
    out = GuidedTranslationInferer(sampler, guidance)(healthy[None], prior, mask=z[None])[0]
    plain = sampler.translate(prior, healthy[None])[0]
    assert (plain - healthy).abs().max() < 1e-3  # exact model: DDIM alone reconstructs the input
    change = (out - healthy).abs().sum(0)
    inside = dilate(z[None].bool(), 2)[0, 0]
    share = float(change[inside].sum() / change.sum())
    assert share > 0.9, share
    assert out[3][z[0] > 0].mean() > healthy[3][z[0] > 0].mean() + 0.2  # FLAIR hyperintense inside z
    zero = torch.zeros(1, dtype=torch.long)
    seg_out = torch.sigmoid(segmenter(out[None], zero))[0, 0] > 0.5
    dice = 2 * float((seg_out & (z[0] > 0)).sum()) / float(seg_out.sum() + z.sum())
    assert dice > 0.8, dice


def test_classifier_guidance_removes_the_tumour_signal(exact_models):
    """A tumour phantom translated towards 'healthy': FLAIR inside the tumour drops, the anomaly map finds it."""
    scheduler, sampler = exact_models
    image, label = _phantom_slice(tumour=True)
    prior = GaussianImagePrior(scheduler, image, std=0.3)
    classifier = ThresholdClassifier(ThresholdSegmenter(prior))
    out = GuidedTranslationInferer(sampler, ClassifierGuidance(classifier, gradient_scale=100.0))(image[None], prior)[0]
    zero = torch.zeros(1, dtype=torch.long)
    p_tumour = lambda x: torch.softmax(classifier(x[None], zero), 1)[0, 1]  # noqa: E731
    assert p_tumour(image) > 0.9 and p_tumour(out) < 0.5
    assert out[3][label].mean() < image[3][label].mean() - 0.15
    anomaly = (out - image).abs().sum(0)
    share = float(anomaly[dilate(label[None, None], 2)[0, 0]].sum() / anomaly.sum())
    assert share > 0.8, share
