"""Benchmark of the ALDM bundle: seconds per training step of each stage, seconds per translated volume, peak memory.

Networks come from the bundle's configs (plus overlays such as ``demo.json``) with random weights: speed and memory
do not depend on the weights. Each stage runs its real step (:class:`~medi2i.engines.aldm.VQGANStep`,
:class:`~medi2i.engines.aldm.SpadeStep`, :class:`~medi2i.engines.aldm.LatentDiffusionPrepareBatch` + UNet update)
on random volumes of the configured ``roi_size``.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from .benchmark import device_name, load_config, memory_columns, timed
from .engines.aldm import LatentDiffusionPrepareBatch, SpadeStep, VQGANStep


def benchmark_aldm(bundle_dir: str, overlays=("demo.json",), overrides: dict | None = None, device: str = "cpu",
                   amp: bool = False, repeats: int = 1, num_inference_steps: int | None = None, on_row=None) -> list[dict]:
    """Rows ``{"stage", "roi_size", "seconds", "unit", "peak_memory_mb", ...}`` for stages 1-3 and inference."""
    dev = torch.device(device)
    overrides = {"device": device, "amp": amp, **(overrides or {})}
    p1 = load_config(bundle_dir, overlays, overrides, "train_autoencoder.json")
    p3 = load_config(bundle_dir, overlays, overrides, "train_diffusion.json")
    pi = load_config(bundle_dir, overlays, {**overrides, **({"num_inference_steps": num_inference_steps} if num_inference_steps else {})})
    roi = [int(s) for s in p1.get_parsed_content("roi_size")]
    modalities = p1.get_parsed_content("modalities")
    batch = {"image": torch.rand(1, len(modalities), *roi)}
    autoencoder = p1.get_parsed_content("network")
    discriminator = p1.get_parsed_content("discriminator")
    engine = SimpleNamespace(network=autoencoder, optimizer=torch.optim.Adam(autoencoder.parameters(), 1e-4), amp=amp,
                             non_blocking=False, state=SimpleNamespace(iteration=1, device=dev))
    step1 = VQGANStep(discriminator, torch.optim.Adam(discriminator.parameters(), 1e-4))
    spade = p3.get_parsed_content("spade_def").to(dev)
    unet = p3.get_parsed_content("network")
    prepare = LatentDiffusionPrepareBatch(autoencoder, p3.get_parsed_content("scheduler"), spade)
    unet_optimizer = torch.optim.AdamW(unet.parameters(), 2e-6)

    def stage2():
        SpadeStep(autoencoder)(SimpleNamespace(network=spade, optimizer=spade_optimizer, amp=amp, non_blocking=False,
                                               state=engine.state), batch)

    def stage3():
        inputs, noise, _, kwargs = prepare(batch, dev)
        unet_optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and dev.type == "cuda"):
            loss = torch.nn.functional.mse_loss(unet(inputs, **kwargs).float(), noise)
        loss.backward()
        unet_optimizer.step()

    spade_optimizer = torch.optim.Adam(spade.parameters(), 1e-4)
    inferer = pi.get_parsed_content("inferer")
    inferer.autoencoder, inferer.spade, inferer.progress = autoencoder, spade, False
    x = torch.rand(1, 1, *roi, device=dev)
    params = lambda m: round(sum(q.numel() for q in m.parameters()) / 1e6, 2)  # noqa: E731
    cases = [("stage 1 VQ-GAN step", lambda: step1(engine, batch), "s/step", params(autoencoder) + params(discriminator)),
             ("stage 2 MS-SPADE step", stage2, "s/step", params(spade)),
             ("stage 3 LDM step", stage3, "s/step", params(unet)),
             (f"translate ({inferer.num_inference_steps} DDIM steps)", lambda: inferer(x, unet, target=torch.tensor([1])), "s/volume", params(unet))]
    rows = []
    for name, fn, unit, n_params in cases:
        seconds = timed(fn, dev, repeats)
        rows.append({"stage": name, "roi_size": "x".join(map(str, roi)), "params_M": n_params, "seconds": round(seconds, 3), "unit": unit,
                     **memory_columns(dev), "device": device_name(dev), "amp": amp})
        if on_row is not None:
            on_row(rows[-1])
    return rows
