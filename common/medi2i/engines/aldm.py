"""Training steps of ALDM's three stages (Kim & Park, WACV 2024) on paired multi-modal volumes ``(B, M, *spatial)``.

* Stage 1, :class:`VQGANStep`: a MONAI ``VQVAE`` on one randomly chosen modality per sample with the losses of
  Section 3.1 / Fig. 3a, each weighted by a config key: L1 reconstruction, quantisation (commitment; the EMA
  codebook needs no codebook term; with an ``AutoencoderKL``, Table 3 (d), the KL term instead), patch adversarial (``PatchDiscriminator`` + ``PatchAdversarialLoss``),
  perceptual (``PerceptualLoss``, only with local weights, see :func:`perceptual_loss`) and cycle consistency
  (the reconstruction sent through the autoencoder again must return to the input, :func:`autoencoder_cycle_loss`).
* Stage 2, :class:`SpadeStep`: MS-SPADE maps frozen source latents to target latents (latent L1) and back
  (cycle term, :func:`spade_cycle_loss`).
* Stage 3, :class:`LatentDiffusionPrepareBatch`: batches for MONAI's ``SupervisedTrainer`` so that the UNet sees
  ``concat(z_src^tar, z_t^tar)`` with the target one-hot as cross-attention context (Eq. 4);
  :class:`FixedLatentDiffusionBatch` gives its validation the same pairs, timesteps and noise at every run.

Each sample draws its own source and target modality (all M x M pairs, the diagonal included, as Table 2).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from monai.engines import PrepareBatch
from monai.inferers import Inferer
from monai.losses import PatchAdversarialLoss, PerceptualLoss

from ..errors import check_file
from .losses import normal_kl

logger = logging.getLogger(__name__)


def perceptual_loss(weights_path: str | None, fake_3d_ratio: float = 0.2) -> PerceptualLoss | None:
    """MONAI's 2.5D ``PerceptualLoss`` (torchvision ResNet-50 features) with weights from a local file, or None
    with a log line when no path is given (nothing is ever downloaded)."""
    if not weights_path:
        logger.info("perceptual loss off: no local weights given (set perceptual_weights to a torchvision ResNet-50 state dict)")
        return None
    return PerceptualLoss(spatial_dims=3, network_type="resnet50", is_fake_3d=True, fake_3d_ratio=fake_3d_ratio,
                          pretrained=True, pretrained_path=check_file(weights_path, "perceptual loss weights"))


def one_modality(images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(B, 1, *spatial)``: channel ``index[b]`` of sample ``b``."""
    return images[torch.arange(images.shape[0], device=images.device), index.to(images.device)].unsqueeze(1)


def random_modalities(images: torch.Tensor) -> torch.Tensor:
    """One uniformly drawn modality index per sample (global torch RNG, so ``set_determinism`` fixes it)."""
    return torch.randint(0, images.shape[1], (images.shape[0],)).to(images.device)


@contextmanager
def codebook_frozen(autoencoder):
    """Inside the block the VQ-VAE's EMA codebook is not updated (quantiser in eval mode; DDP-wrapped or not)."""
    quantizer = getattr(getattr(autoencoder, "module", autoencoder), "quantizer", None)
    if quantizer is None or not quantizer.training:
        yield
        return
    quantizer.eval()
    try:
        yield
    finally:
        quantizer.train()


def autoencoder_cycle_loss(autoencoder, reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Cycle consistency of the compression model: ``|D(E(x_hat)) - x|_1`` with ``x_hat = D(E(x))``. The second
    pass trains encoder and decoder but leaves the EMA codebook to the encodings of real images."""
    with codebook_frozen(autoencoder):
        return F.l1_loss(autoencoder(reconstruction)[0], images)


def spade_cycle_loss(spade, target_like: torch.Tensor, source: torch.Tensor, z_src: torch.Tensor) -> torch.Tensor:
    """Cycle consistency of MS-SPADE: the target-like latents switched back to the source modality must give
    the source latents, ``|S(S(z_src, tar), src) - z_src|_1``."""
    return F.l1_loss(spade(target_like, source), z_src)


def kl_loss(z_mu: torch.Tensor, z_sigma: torch.Tensor) -> torch.Tensor:
    """KL divergence of ``N(mu, sigma^2)`` from ``N(0, 1)``, summed over the latent and averaged over the batch."""
    mu, logvar = z_mu.float(), torch.log(z_sigma.float().pow(2))
    kl = normal_kl(mu, logvar, torch.zeros_like(mu), torch.zeros_like(logvar))
    return kl.flatten(1).sum(1).mean()


def _amp(engine, x: torch.Tensor):
    """bf16 autocast on CUDA when the engine's ``amp`` is set (no gradient scaler needed)."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(engine.amp) and x.is_cuda)


def _images(engine, batch) -> torch.Tensor:
    return batch["image"].to(engine.state.device, non_blocking=engine.non_blocking).float()


class VQGANStep:
    """Stage 1 iteration (``SupervisedTrainer(iteration_update=...)``): generator step on the trainer's network
    and optimizer, then a discriminator step. Weights of zero switch a loss off (its term is not computed)."""

    def __init__(self, discriminator: torch.nn.Module, discriminator_optimizer, perceptual: PerceptualLoss | None = None,
                 l1_weight: float = 1.0, quantization_weight: float = 1.0, adversarial_weight: float = 0.01,
                 perceptual_weight: float = 0.001, cycle_weight: float = 1.0, adversarial_start: int = 0,
                 kl_weight: float = 1e-6):
        self.discriminator, self.d_optimizer, self.perceptual = discriminator, discriminator_optimizer, perceptual
        self.adversarial = PatchAdversarialLoss(criterion="least_squares")
        self.weights = {"l1": l1_weight, "quantization": quantization_weight, "kl": kl_weight, "adversarial": adversarial_weight,
                        "perceptual": perceptual_weight if perceptual is not None else 0.0, "cycle": cycle_weight}
        self.adversarial_start = int(adversarial_start)

    def generator_terms(self, autoencoder, x: torch.Tensor, use_adversarial: bool) -> tuple[torch.Tensor, dict]:
        reconstruction, *latent = autoencoder(x)  # VQVAE: (x_hat, quantisation loss); AutoencoderKL: (x_hat, mu, sigma)
        terms = {"l1": F.l1_loss(reconstruction.float(), x)}
        if len(latent) == 2:
            terms["kl"] = kl_loss(*latent)
        else:
            terms["quantization"] = latent[0].float().mean()
        if self.weights["perceptual"]:
            terms["perceptual"] = self.perceptual(reconstruction.float(), x)
        if self.weights["cycle"]:
            terms["cycle"] = autoencoder_cycle_loss(autoencoder, reconstruction, x)
        if use_adversarial:
            terms["adversarial"] = self.adversarial(self.discriminator(reconstruction.contiguous().float())[-1],
                                                    target_is_real=True, for_discriminator=False)
        return reconstruction, terms

    def __call__(self, engine, batch) -> dict:
        images = _images(engine, batch)
        x = one_modality(images, random_modalities(images))
        use_adversarial = self.weights["adversarial"] > 0 and engine.state.iteration > self.adversarial_start
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=True)
        with _amp(engine, x):
            reconstruction, terms = self.generator_terms(engine.network, x, use_adversarial)
            loss = sum(self.weights[k] * v for k, v in terms.items())
        loss.backward()
        engine.optimizer.step()
        out = {"image": x, "pred": reconstruction.detach(), "loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}
        if use_adversarial:
            self.d_optimizer.zero_grad(set_to_none=True)
            with _amp(engine, x):
                fake = self.adversarial(self.discriminator(reconstruction.detach().contiguous().float())[-1],
                                        target_is_real=False, for_discriminator=True)
                real = self.adversarial(self.discriminator(x.contiguous())[-1], target_is_real=True, for_discriminator=True)
                d_loss = self.weights["adversarial"] * (fake + real) / 2
            d_loss.backward()
            self.d_optimizer.step()
            out["discriminator"] = d_loss.detach()
        return out


class ModalitiesAsBatch(PrepareBatch):
    """Validation batches of stage 1: every modality of every case as its own single-channel image,
    ``(B*M, 1, *spatial)`` as both input and target."""

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        images = batchdata["image"].to(device, non_blocking=non_blocking).float()
        x = images.reshape(-1, 1, *images.shape[2:])
        return x, x, (), {}


class ReconstructionInferer(Inferer):
    """``inferer(x, vqvae)`` -> the reconstruction (MONAI's ``VQVAE`` returns it with the quantisation loss)."""

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:
        return network(inputs)[0]


class LatentPairs:
    """Frozen encoder: ``(z_src, z_tar, source, target)`` for one random (source, target) pair per sample, the
    latents quantised (``VQVAE.encode_stage_2_inputs``, eval mode so the EMA codebook stays fixed) and scaled."""

    def __init__(self, autoencoder: torch.nn.Module, latent_scale: float = 1.0):
        self.autoencoder, self.latent_scale = autoencoder, float(latent_scale)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.autoencoder.eval()
        return self.autoencoder.encode_stage_2_inputs(x).float() * self.latent_scale

    def __call__(self, images: torch.Tensor):
        source, target = random_modalities(images), random_modalities(images)
        both = self.encode(torch.cat([one_modality(images, source), one_modality(images, target)]))
        z_src, z_tar = both.chunk(2)
        return z_src, z_tar, source, target


class SpadePrepareBatch(PrepareBatch):
    """Stage 2 validation batches: ``(z_src, z_tar, (), {"target": target})``, the network called as
    ``spade(z_src, target=target)``."""

    def __init__(self, autoencoder: torch.nn.Module, latent_scale: float = 1.0):
        self.pairs = LatentPairs(autoencoder, latent_scale)

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        z_src, z_tar, _, target = self.pairs(batchdata["image"].to(device, non_blocking=non_blocking).float())
        return z_src, z_tar, (), {"target": target}


class SpadeStep:
    """Stage 2 iteration: ``|S(z_src, tar) - z_tar|_1 + cycle_weight * |S(S(z_src, tar), src) - z_src|_1``."""

    def __init__(self, autoencoder: torch.nn.Module, cycle_weight: float = 1.0, latent_scale: float = 1.0):
        self.pairs, self.cycle_weight = LatentPairs(autoencoder, latent_scale), float(cycle_weight)

    def __call__(self, engine, batch) -> dict:
        z_src, z_tar, source, target = self.pairs(_images(engine, batch))
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=True)
        with _amp(engine, z_src):
            target_like = engine.network(z_src, target)
            latent = F.l1_loss(target_like.float(), z_tar)
            cycle = spade_cycle_loss(engine.network, target_like, source, z_src) if self.cycle_weight else torch.zeros(())
            loss = latent + self.cycle_weight * cycle
        loss.backward()
        engine.optimizer.step()
        return {"image": z_src, "label": z_tar, "pred": target_like.detach(), "loss": loss.detach(),
                "latent_l1": latent.detach(), "cycle": cycle.detach()}


class LatentDiffusionPrepareBatch(PrepareBatch):
    """Stage 3 batches: ``(concat(z_cond, z_t), noise, (), {"timesteps": t, "context": y})`` with
    ``z_t = add_noise(z_tar, noise, t)``, ``t`` uniform in [0, T) and ``y`` the target one-hot ``(B, 1, M)``.

    ``condition="spade"``: ``z_cond = S(z_src, tar)`` (ALDM); ``"source"``: ``z_cond = z_src`` (Table 3 (b),
    Palette-style input without MS-SPADE); ``"none"``: ``z_cond = 0`` (Table 3 (a), the diffusion model alone: the
    zero channels carry nothing, so this is a UNet on ``z_t`` only with the same layout of weights).
    """

    def __init__(self, autoencoder: torch.nn.Module, scheduler, spade: torch.nn.Module | None = None,
                 condition: str = "spade", latent_scale: float = 1.0):
        if condition not in ("spade", "source", "none"):
            raise ValueError(f"condition must be 'spade', 'source' or 'none', got {condition!r}")
        self.pairs, self.scheduler, self.spade, self.condition = LatentPairs(autoencoder, latent_scale), scheduler, spade, condition

    def condition_on(self, z_src: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``z_cond`` for the configured ``condition`` (no gradient: the autoencoder and MS-SPADE are frozen)."""
        with torch.no_grad():
            if self.condition == "spade":
                self.spade.eval()
                return self.spade(z_src, target).float()
            return torch.zeros_like(z_src) if self.condition == "none" else z_src

    def noised(self, z_cond, z_tar, target, noise, timesteps, num_modalities: int):
        """The network's input and its regression target: the noise (Eq. 4), or the velocity when the scheduler's
        ``prediction_type`` is ``"v_prediction"``."""
        noisy = self.scheduler.add_noise(z_tar, noise, timesteps)
        context = F.one_hot(target, num_modalities).float().unsqueeze(1)
        if getattr(self.scheduler, "prediction_type", "epsilon") == "v_prediction":
            noise = self.scheduler.get_velocity(z_tar, noise, timesteps)
        return torch.cat([z_cond, noisy], 1), noise, (), {"timesteps": timesteps, "context": context}

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        images = batchdata["image"].to(device, non_blocking=non_blocking).float()
        z_src, z_tar, _, target = self.pairs(images)
        noise = torch.randn_like(z_tar)
        timesteps = torch.randint(0, self.scheduler.num_train_timesteps, (z_tar.shape[0],), device=z_tar.device).long()
        return self.noised(self.condition_on(z_src, target), z_tar, target, noise, timesteps, images.shape[1])


class FixedLatentDiffusionBatch(LatentDiffusionPrepareBatch):
    """Stage 3 validation batches that are the same at every validation run, so that the noise-prediction loss
    compares checkpoints rather than draws: each volume gives every off-diagonal (source, target) pair once, at
    timesteps spread evenly over [0, T) (pair k of n at ``(k + 0.5) T / n``), with noise from a generator seeded
    by ``seed`` at every call. A random t per volume made the loss swing 100-fold between validation runs."""

    def __init__(self, *args, seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = int(seed)

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        images = batchdata["image"].to(device, non_blocking=non_blocking).float()
        num, modalities = images.shape[:2]
        pairs = torch.tensor([(s, t) for s in range(modalities) for t in range(modalities) if s != t], device=images.device)
        sample = torch.arange(num, device=images.device).repeat_interleave(len(pairs))
        source, target = pairs[:, 0].repeat(num), pairs[:, 1].repeat(num)
        latents = torch.stack([self.pairs.encode(images[:, m : m + 1]) for m in range(modalities)], 1)  # each volume once
        z_src, z_tar = latents[sample, source], latents[sample, target]
        noise = torch.randn(z_tar.shape, generator=torch.Generator().manual_seed(self.seed)).to(z_tar.device)
        steps = self.scheduler.num_train_timesteps
        timesteps = ((torch.arange(len(pairs)) + 0.5) * steps / len(pairs)).long().repeat(num).to(z_tar.device)
        return self.noised(self.condition_on(z_src, target), z_tar, target, noise, timesteps, modalities)
