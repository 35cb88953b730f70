"""Benchmark of a bundle's guided translation: seconds per image, network evaluations, peak memory, CPU and CUDA.

Networks, scheduler and guidance are built from the bundle's ``inference.json`` (plus overlays) with random
weights: speed does not depend on the weights. Variants (stride, batch size, bf16) are compared in one run.
"""

from __future__ import annotations

import itertools
import os
import resource
import time

import torch
from monai.bundle import ConfigParser

from .diffusion import DDIMSampler, GuidedTranslationInferer


def device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"


def memory_columns(dev: torch.device) -> dict:
    """``peak_memory_mb``: CUDA memory allocated since the last reset, or the process's peak RSS on the CPU."""
    if dev.type == "cuda":
        return {"peak_memory_mb": round(torch.cuda.max_memory_allocated(dev) / 2**20, 1), "memory_kind": "CUDA allocated"}
    return {"peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
            "memory_kind": "process peak RSS"}


def timed(fn, dev: torch.device, repeats: int = 1, warm_up=None) -> float:
    """Seconds per call of ``fn`` over ``repeats`` calls, after one warm-up call (``warm_up``, default ``fn``);
    the CUDA peak-memory counter is reset after the warm-up (read it with :func:`memory_columns`)."""
    (warm_up or fn)()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return (time.perf_counter() - start) / repeats


def load_config(bundle_dir: str, overlays=(), overrides: dict | None = None, config: str = "inference.json") -> ConfigParser:
    """The bundle's ``configs/<config>`` with ``overlays`` merged on top (a bare file name is looked up in
    ``configs/``, anything else is a path), ``bundle_root`` set and ``overrides`` applied, parsed."""
    files = [os.path.join(bundle_dir, "configs", c) if os.path.basename(c) == c else c for c in (config, *overlays)]
    parser = ConfigParser()
    parser.read_config(files)
    parser.update({"bundle_root": bundle_dir, **(overrides or {})})
    parser.parse()
    return parser


def benchmark_translation(bundle_dir: str, overlays=("demo.json",), overrides: dict | None = None, device: str = "cpu",
                          strides=(10,), batch_sizes=(1,), amp=(False,), noise_level: int | None = None,
                          repeats: int = 1, seed: int = 0, variants=None, on_row=None) -> list[dict]:
    """One row per (stride, batch size, amp) variant: ``variants`` as a list of such triples, or every combination
    of ``strides``, ``batch_sizes`` and ``amp``. ``on_row(row)`` is called as each row is measured."""
    torch.manual_seed(seed)
    parser = load_config(bundle_dir, overlays, {"device": device, **(overrides or {})})
    dev = torch.device(device)
    network = parser.get_parsed_content("network").eval()
    guidance = parser.get_parsed_content("guidance")
    scheduler = parser.get_parsed_content("scheduler")
    size = int(parser.get_parsed_content("image_size"))
    level = int(noise_level or parser.get_parsed_content("noise_level"))
    n_params = sum(p.numel() for p in network.parameters())
    rows = []
    for stride, batch, bf16 in variants or itertools.product(strides, batch_sizes, amp):
        if bf16 and dev.type != "cuda":
            continue
        sampler = DDIMSampler(scheduler, level, stride, amp=bf16)
        guidance.amp = bf16
        inferer = GuidedTranslationInferer(sampler, guidance)
        x = torch.rand(batch, network.in_channels, size, size, device=dev)
        warm_up = GuidedTranslationInferer(DDIMSampler(scheduler, 2, 1, amp=bf16), guidance)
        seconds = timed(lambda: inferer(x, network, desired_value=torch.full((batch,), 0.1, device=dev)), dev, repeats,
                        lambda: warm_up(x, network, desired_value=0.1)) / batch
        rows.append({
            "device": device_name(dev), "image_size": size, "diffusion_params_M": round(n_params / 1e6, 2),
            "noise_level": level, "stride": stride, "ddim_steps": len(sampler.timesteps) - 1, "batch": batch, "bf16": bf16,
            "seconds_per_image": round(seconds, 4),
            "network_evaluations_per_image": sampler.network_evaluations // (repeats * batch),
            "guidance_gradients_per_image": sampler.guidance_evaluations // (repeats * batch), **memory_columns(dev),
        })
        if on_row is not None:
            on_row(rows[-1])
    return rows


#: (method, steps[, eta]) compared by default: the paper's 2000-step ancestral sampler and DDIM 50/100/250,
#: deterministic (eta = 0) and stochastic (eta = 1)
SAMPLING_VARIANTS = (("ancestral", 2000), ("ddim", 50), ("ddim", 100), ("ddim", 250),
                     ("ddim", 50, 1.0), ("ddim", 100, 1.0), ("ddim", 250, 1.0))


def benchmark_conditional_sampling(bundle_dir: str, checkpoint: str | None = None, overlays=("demo.json",),
                                   overrides: dict | None = None, device: str = "cpu", variants=SAMPLING_VARIANTS,
                                   num_images: int = 4, seed: int = 0, on_row=None) -> list[dict]:
    """Med-cDiff bundles: seconds per image and PSNR against the target for each (method, steps[, DDIM eta]) variant
    (inpainting: also PSNR inside the hole).

    Conditions and targets are the first ``num_images`` test slices of the bundle's datalist (``dataset_dir``
    override), degraded by the bundle's seeded degradation. PSNR needs trained weights (``checkpoint``); with
    random weights only the timings mean something (PSNR is then reported but labelled ``untrained``)."""
    from .metrics.restoration import psnr, psnr_in_mask
    from .networks.checkpoints import load_weights
    from .workflows.restoration import resolve_items

    torch.manual_seed(seed)
    parser = load_config(bundle_dir, overlays, {"device": device, **(overrides or {})})
    dev = torch.device(device)
    network = parser.get_parsed_content("network").eval()
    if checkpoint:
        load_weights(network, checkpoint, "diffusion model checkpoint", map_location=dev)
    transform = parser.get_parsed_content("test_preprocessing")
    items = resolve_items(parser.get_parsed_content("inputs"), parser.get_parsed_content("datalist_section"))[:num_images]
    data = [transform(item) for item in items]
    y = torch.stack([torch.as_tensor(d["condition"]).float() for d in data]).to(dev)
    target = torch.stack([torch.as_tensor(d["target"]).float() for d in data]).to(dev)
    mask = torch.stack([torch.as_tensor(d["mask"]).float() for d in data]).to(dev) if "mask" in data[0] else None
    rows = []
    for variant in variants:
        method, steps, eta = (*variant, 0.0)[:3]
        parser.update({"sampling_method": method, "ddim_steps": steps, "ddim_eta": eta, "seed": seed})
        inferer = parser.get_parsed_content("inferer", lazy=False)  # the config's sampler (amp, clipping) per variant
        sampler = inferer.sampler
        sampler.progress = False
        start = time.perf_counter()
        out = inferer(y, network)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rows.append({"bundle": os.path.basename(os.path.normpath(bundle_dir)), "method": method, "steps": sampler.steps,
                     "eta": eta if method == "ddim" else "", "images": len(data), "image_size": int(y.shape[-1]),
                     "device": device_name(dev), "seconds_per_image": round((time.perf_counter() - start) / len(data), 3),
                     "psnr": round(float(psnr(out, target).mean()), 2), "weights": "trained" if checkpoint else "untrained"})
        if mask is not None:  # inpainting: the known pixels are copied, so the hole is what differs
            rows[-1]["psnr_hole"] = round(float(psnr_in_mask(out, target, mask).mean()), 2)
        if on_row is not None:
            on_row(rows[-1])
    return rows
