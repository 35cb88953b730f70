"""Classifier-free guidance arithmetic on exact (Gaussian) models, DDPM/DDIM through MONAI schedulers, label dropout
at the configured rate, contrast names -- no training needed."""

import os

import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from conftest import ROOT
from medi2i.data.contrasts import ContrastSet, canonical_contrast
from medi2i.diffusion import ClassConditionalSampler, ClassGaussianEpsilon, ContrastGenerationInferer, guided_epsilon
from medi2i.engines import LabelDropoutPrepareBatch, drop_labels
from medi2i.errors import InputError

BUNDLE = os.path.join(ROOT, "bundles", "brain_mri_contrast_generation_cddpm")
T = 400
MEANS = [0.2, 0.7, 0.45]  # class 0, class 1, null (the unconditional model's mean)
STD = 0.05


def _model():
    return ClassGaussianEpsilon(DDPMScheduler(T, clip_sample=False), MEANS, STD)


def test_w0_is_the_conditional_prediction_and_w_mixes_linearly():
    model, x = _model(), torch.randn(6, 1, 8, 8)
    t, c = torch.randint(0, T, (6,)), torch.tensor([0, 1, 0, 1, 0, 1])
    conditional = model(x, timesteps=t, class_labels=c)
    unconditional = model(x, timesteps=t, class_labels=torch.full_like(c, 2))
    assert torch.equal(guided_epsilon(model, x, t, c, 0.0, null_class=2), conditional)
    for w in (0.5, 2.0):
        assert torch.allclose(guided_epsilon(model, x, t, c, w, 2), (1 + w) * conditional - w * unconditional, atol=1e-6)
    per_sample = torch.tensor([0.0, 0.5, 2.0, 0.0, 0.5, 2.0])
    expected = conditional + per_sample.view(-1, 1, 1, 1) * (conditional - unconditional)
    assert torch.allclose(guided_epsilon(model, x, t, c, per_sample, 2), expected, atol=1e-6)


@pytest.mark.parametrize("scheduler", [DDPMScheduler(T, clip_sample=False), DDIMScheduler(T, clip_sample=False)],
                         ids=["ddpm", "ddim"])
def test_larger_w_moves_samples_further_from_the_unconditional_mean(scheduler):
    """The guided noise of Gaussian classes is that of N((1+w) mu_c - w mu_null, std^2): samples land there."""
    sampler = ClassConditionalSampler(scheduler, num_inference_steps=50, eta=0.0)
    model, gen = _model(), torch.Generator().manual_seed(0)
    noise = torch.randn(4, 1, 16, 16, generator=gen)
    distances = []
    for w in (0.0, 0.5, 2.0):
        x0, _ = sampler.sample(model, noise, torch.tensor([1, 1, 1, 1]), w, null_class=2, generator=gen)
        expected = (1 + w) * MEANS[1] - w * MEANS[2]
        assert float(x0.mean()) == pytest.approx(expected, abs=0.01)
        if sampler.method == "ddpm":  # ancestral sampling also gets the spread right (50-step DDIM narrows it)
            assert float(x0.std()) == pytest.approx(STD, rel=0.2)
        distances.append(abs(float(x0.mean()) - MEANS[2]))
    assert distances[0] < distances[1] < distances[2]


def test_samplers_use_monai_schedulers_with_consistent_steps():
    ddpm = ClassConditionalSampler(DDPMScheduler(T), num_inference_steps=10)
    assert ddpm.method == "ddpm" and ddpm.timesteps.tolist() == list(range(T - 1, -1, -1))  # ancestral: all T steps
    ddim = ClassConditionalSampler(DDIMScheduler(T), num_inference_steps=40)
    assert ddim.timesteps.tolist() == list(range(T - 1, -1, -10))  # fixed gap T // n, last step reaches abar = 1
    with pytest.raises(InputError, match="DDIM needs a divisor of T = 400"):
        ClassConditionalSampler(DDIMScheduler(T), num_inference_steps=30).check()


def test_inferer_output_shape_and_contrast_choice():
    inferer = ContrastGenerationInferer(ClassConditionalSampler(DDIMScheduler(T, clip_sample=False), 20),
                                        ["low", "high"], contrast="high", guidance_weight=0.0, seed=1)
    means = [0.2, 0.7, 0.45]
    model = ClassGaussianEpsilon(DDPMScheduler(T), means, STD)
    out = inferer(torch.zeros(2, 1, 12, 12, 1), model)
    assert out.shape == (2, 1, 12, 12, 1) and float(out.mean()) == pytest.approx(0.7, abs=0.02)
    low = inferer(torch.zeros(2, 1, 12, 12), model, contrast="low", guidance_weight=2.0)
    assert float(low.mean()) == pytest.approx(3 * 0.2 - 2 * 0.45, abs=0.02)
    with pytest.raises(InputError, match="unknown contrast 'PD'"):
        inferer(torch.zeros(1, 1, 12, 12), model, contrast="PD")
    with pytest.raises(InputError, match="w must be a number >= 0"):
        inferer(torch.zeros(1, 1, 12, 12), model, guidance_weight=-1)


def test_label_dropout_happens_at_the_configured_rate():
    parser = ConfigParser()
    parser.read_config(os.path.join(BUNDLE, "configs", "train.json"))
    parser.parse()
    prepare = parser.get_parsed_content("train#trainer#prepare_batch")
    assert isinstance(prepare, LabelDropoutPrepareBatch) and prepare.drop_prob == 0.1  # the paper's rate
    n, null = 40_000, prepare.null_class
    labels = torch.randint(0, null, (n,))
    torch.manual_seed(3)
    _, _, _, kwargs = prepare({"image": torch.zeros(n, 1, 2, 2), "label": labels})
    dropped = kwargs["class_labels"] == null
    tolerance = 4 * (0.1 * 0.9 / n) ** 0.5
    assert abs(float(dropped.float().mean()) - 0.1) < tolerance
    assert torch.equal(kwargs["class_labels"][~dropped], labels[~dropped])  # the rest keep their contrast
    validation = parser.get_parsed_content("validate#evaluator#prepare_batch")
    assert torch.equal(validation({"image": torch.zeros(8, 1, 2, 2), "label": labels[:8]})[3]["class_labels"], labels[:8])
    for rate in (0.0, 0.3, 1.0):
        got = float((drop_labels(labels, rate, null, torch.Generator().manual_seed(0)) == null).float().mean())
        assert abs(got - rate) < 4 * (rate * (1 - rate) / n) ** 0.5 + 1e-9


def test_contrast_names_are_configuration():
    paper = ContrastSet(["FLAIR", "T1", "T1 post-contrast", "T2"])
    assert paper.index("flair") == 0 and paper.index("t1ce") == 2 and paper.index("AXT1POST") == 2
    assert paper.null_class == 4 and paper.num_class_embeds == 5
    assert [canonical_contrast(n) for n in ("t1c", "t2w", "t2f", "AXT1PRE", "PD")] == ["T1 post-contrast", "T2", "FLAIR", "T1", "PD"]
    with_pd = ContrastSet(["T1", "T2", "PD"])
    assert with_pd.index("pd") == 2 and with_pd.null_class == 3
    with pytest.raises(InputError, match="unknown contrast 't1ce' \\(configured: T1, T2, PD\\)"):
        with_pd.index("t1ce")
