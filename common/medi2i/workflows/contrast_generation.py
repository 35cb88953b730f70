"""Contrast-conditional generation: what ``inference.json`` runs.

``N`` samples of each requested contrast with guidance weight ``w`` (DDPM or DDIM, set by the inferer's sampler).
Column ``j`` of every contrast starts from the same noise x_T, so the grid compares contrasts at fixed noise.
Outputs in ``output_dir``: ``<contrast>/sample_<j>.nii.gz`` (``(1, S, S, 1)``, spacing ``pixdim`` mm),
``grid.png`` (rows = contrasts, columns = samples), ``summary.csv``, and with ``trajectory=true``
``trajectory.png``/``trajectory.gif`` (x_t of sample 0 of each contrast). Settings and checkpoints are checked
before any work; the folder appears whole or not at all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import torch
from monai.data import MetaTensor
from monai.utils import set_determinism
from tqdm import tqdm

from ..data.contrasts import ContrastSet
from ..data.io import save_csv, save_nifti, staged_output
from ..diffusion.generation_inferer import ContrastGenerationInferer, check_guidance_weight
from ..errors import exit_on_input_error, require
from ..viz import sample_grid, trajectory_gif, trajectory_strip
from ..networks.checkpoints import refuse_existing_and_load
from ..settings import check_runner


def contrast_slug(name: str) -> str:
    """A file-name-safe form of a contrast name ("T1 post-contrast" -> "T1_postcontrast")."""
    return name.replace(" ", "_").replace("-", "")


def check_num_samples(n) -> int:
    require(isinstance(n, int) and not isinstance(n, bool) and n > 0, "num_samples", f"N must be a positive integer, got {n}")
    return n


def generate(network: torch.nn.Module, inferer: ContrastGenerationInferer, contrasts: Sequence[str], num_samples: int,
             guidance_weight: float, shape: Sequence[int], batch_size: int = 8, device="cpu", seed: int = 0,
             trajectory: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, list], dict[str, float]]:
    """``(samples, trajectories, seconds_per_image)``: per contrast ``(N, *shape)`` samples on the CPU, the x_t
    frames of sample 0 (when ``trajectory``), and the sampling time per image."""
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    noise = torch.randn((num_samples, *shape), generator=generator, device=device)
    frames = inferer.trajectory_frames
    samples, trajectories, seconds = {}, {}, {}
    with tqdm(total=len(contrasts) * num_samples, desc=f"generating (w={guidance_weight:g})", unit="image") as bar:
        for name in contrasts:
            label = inferer.contrasts.index(name)
            chunks, start_time = [], time.perf_counter()
            for start in range(0, num_samples, batch_size):
                x_t = noise[start : start + batch_size]
                inferer.trajectory_frames = frames if (trajectory and start == 0) else 0
                labels = torch.full((x_t.shape[0],), label, device=device, dtype=torch.long)
                chunks.append(inferer(x_t, network, class_labels=labels, guidance_weight=guidance_weight,
                                      generator=generator, noise=x_t).cpu())
                if trajectory and start == 0:
                    trajectories[name] = [(t, x[:1][0]) for t, x in inferer.last_trajectory]
                bar.update(x_t.shape[0])
            seconds[name] = (time.perf_counter() - start_time) / num_samples
            samples[name] = torch.cat(chunks)
    inferer.trajectory_frames = frames
    return samples, trajectories, seconds


class ContrastGeneration:
    """Args:
        output_dir: folder to write (refused when it exists and is not empty, unless ``overwrite``).
        network: the class-conditional DDPM; ``checkpoint`` its weights (``models/model.pt``).
        inferer: :class:`~medi2i.diffusion.ContrastGenerationInferer` (sampler, trained contrast set).
        contrasts: requested contrast names (a subset of the trained ones, any alias).
        num_samples: N per contrast. guidance_weight: w >= 0.
        image_size, in_channels: sample shape. pixdim: in-plane spacing written to the NIfTI affine (mm).
        trajectory: also write the denoising trajectory (``inferer.trajectory_frames`` frames, default 10).
        settings: the config's settings to check first (:func:`~medi2i.settings.check_settings`).
    """

    def __init__(self, output_dir: str, network: torch.nn.Module, inferer: ContrastGenerationInferer, checkpoint: str,
                 contrasts: Sequence[str], num_samples: int = 8, guidance_weight: float = 0.0, image_size: int = 160,
                 in_channels: int = 1, pixdim: float = 2.0, batch_size: int = 8, device="cpu", seed: int = 0,
                 trajectory: bool = False, overwrite: bool = False, settings: dict | None = None):
        self.output_dir, self.network, self.inferer, self.checkpoint = output_dir, network, inferer, checkpoint
        self.contrasts, self.num_samples, self.guidance_weight = contrasts, num_samples, guidance_weight
        self.shape, self.pixdim = (int(in_channels), int(image_size), int(image_size)), float(pixdim)
        self.batch_size, self.device, self.seed = max(1, int(batch_size)), torch.device(device), seed
        self.trajectory, self.overwrite, self.settings = trajectory, overwrite, settings

    def check(self) -> list[str]:
        """Validate every setting (one-line errors); return the requested contrasts' canonical names."""
        check_num_samples(self.num_samples)
        check_guidance_weight(self.guidance_weight)
        check_runner(self, self.inferer)
        self.inferer.sampler.check()
        names = [self.inferer.contrasts.names[i] for i in self.inferer.contrasts.labels(list(self.contrasts))]
        if self.trajectory and not self.inferer.trajectory_frames:
            self.inferer.trajectory_frames = 10
        return names

    @exit_on_input_error
    def run(self) -> list[dict]:
        names = self.check()
        refuse_existing_and_load(self.output_dir, None, self.overwrite,
                                 [(self.network, self.checkpoint, "diffusion model checkpoint")], self.device)
        self.network.eval()
        set_determinism(self.seed)
        samples, trajectories, seconds = generate(self.network, self.inferer, names, self.num_samples, float(self.guidance_weight),
                                                  self.shape, self.batch_size, self.device, self.seed, self.trajectory)
        affine = torch.diag(torch.tensor([self.pixdim, self.pixdim, 1.0, 1.0], dtype=torch.float64))
        rows = []
        with staged_output(self.output_dir, overwrite=self.overwrite) as folder:
            for name, images in samples.items():
                os.makedirs(os.path.join(folder, contrast_slug(name)))
                for j, image in enumerate(images):
                    rel = os.path.join(contrast_slug(name), f"sample_{j:03d}.nii.gz")
                    save_nifti(MetaTensor(image.unsqueeze(-1), affine=affine), os.path.join(folder, rel))
                    rows.append({"contrast": name, "label": self.inferer.contrasts.index(name), "sample": j, "file": rel,
                                 "guidance_weight": float(self.guidance_weight), "sampler": self.inferer.sampler.method,
                                 "steps": len(self.inferer.sampler.timesteps), "mean_intensity": round(float(image.mean()), 6),
                                 "seconds_per_image": round(seconds[name], 4)})
            sample_grid(os.path.join(folder, "grid.png"), samples,
                        f"w = {float(self.guidance_weight):g}, {self.inferer.sampler.method.upper()}")
            if trajectories:
                trajectory_strip(os.path.join(folder, "trajectory.png"), trajectories)
                trajectory_gif(os.path.join(folder, "trajectory.gif"), trajectories)
            save_csv(rows, os.path.join(folder, "summary.csv"))
        print(f"wrote {len(rows)} samples of {', '.join(names)} to {self.output_dir}")
        return rows
