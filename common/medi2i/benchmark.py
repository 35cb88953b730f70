"""Benchmark of a bundle's guided translation: seconds per image, network evaluations, peak memory, CPU and CUDA.

Networks, scheduler and guidance are built from the bundle's ``inference.json`` (plus overlays) with random
weights unless a weights folder is given: speed does not depend on the weights. Variants (stride, batch size, bf16,
speed flags) are compared in one run, and :func:`benchmark_against_monai` times the collection's sampler against a
plain MONAI-tutorial loop (:func:`plain_monai_translation`) on the same networks and sizes.
"""

from __future__ import annotations

import copy
import itertools
import os
import resource
import time

import torch
from monai.bundle import ConfigParser

from .diffusion import DDIMSampler, GuidedTranslationInferer
from .diffusion.acceleration import set_tf32
from .networks.checkpoints import load_weights

#: overrides that leave the guidance network with its random weights (no checkpoint to load)
RANDOM_GUIDANCE = {"guidance#checkpoint": None}


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
    parser = load_config(bundle_dir, overlays, {"device": device, **RANDOM_GUIDANCE, **(overrides or {})})
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


def plain_monai_translation(network: torch.nn.Module, regressor: torch.nn.Module, scheduler, x: torch.Tensor,
                            noise_level: int, stride: int, gradient_scale: float, desired: torch.Tensor,
                            fixed: torch.Tensor) -> torch.Tensor:
    """Regression-guided DDIM written the straightforward way, as in MONAI's classifier-guidance tutorial
    (generative/anomaly_detection): ``DDIMScheduler.reversed_step`` to encode, ``step`` to decode, the regressor's
    gradient by autograd in every step, ``eps - sqrt(1 - abar_t) c s_t grad R`` with ``s_t = i - R`` (or the fixed
    scale where ``desired`` is NaN); every image of ``x`` (one per case and target) is encoded."""
    scheduler = copy.deepcopy(scheduler)
    scheduler.clip_sample = False
    scheduler.set_timesteps(scheduler.num_train_timesteps // stride)
    current = x
    for t in range(0, noise_level, stride):
        with torch.no_grad():
            model_output = network(current, timesteps=torch.full((x.shape[0],), t, device=x.device))[:, : x.shape[1]]
        current, _ = scheduler.reversed_step(model_output, t, current)
    for t in range(noise_level, 0, -stride):
        timesteps = torch.full((x.shape[0],), t, device=x.device)
        with torch.no_grad():
            model_output = network(current, timesteps=timesteps)[:, : x.shape[1]]
        with torch.enable_grad():
            x_in = current.detach().requires_grad_(True)
            r = regressor(x_in, timesteps=timesteps).reshape(-1)
            grad = torch.autograd.grad(r.sum(), x_in)[0]
        s = torch.where(torch.isnan(desired), fixed, desired - r.detach())
        alpha_prod_t = scheduler.alphas_cumprod[t].to(x.device)
        updated = model_output - (1 - alpha_prod_t).sqrt() * gradient_scale * s.view(-1, 1, 1, 1) * grad
        current, _ = scheduler.step(updated, t, current)
    return current


def _alternating(functions: dict, dev: torch.device, repeats: int) -> dict:
    """Seconds per call of each function, the functions taking turns ``repeats`` times (so that load from other
    processes falls on all of them alike); the minimum over the repeats."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, fn in functions.items():
            best[name] = min(best[name], timed(fn, dev, 1, warm_up=lambda: None))
    return best


def benchmark_against_monai(bundle_dir: str, overlays=("demo.json",), overrides: dict | None = None, device: str = "cpu",
                            weights: str | None = None, cases: int = 1, repeats: int = 2,
                            variants=({},), extrapolate_steps: int | None = None, seed: int = 0, on_row=None) -> list[dict]:
    """Regression-guided translation of ``cases`` images towards every target of the config (``desired_values``
    and ``fixed_scales``), by the bundle's inferer (its speed flags, encoding each case once, all targets decoded
    as one batch) and by :func:`plain_monai_translation` on copies of the same networks without speed flags.

    One row per entry of ``variants`` (config overrides, e.g. ``{"channels_last": True}``): seconds per image of
    both and their ratio. ``weights``: a folder with ``model.pt`` and ``regressor.pt`` (random weights otherwise).
    ``extrapolate_steps``: run only that many DDIM steps each way and scale the times to the config's L (every
    step costs the same), for paper sizes on the CPU."""
    from .workflows.translate import growth_targets

    rows = []
    for variant in variants:
        torch.manual_seed(seed)
        flags = {**(overrides or {}), **variant}
        parser = load_config(bundle_dir, overlays, {"device": device, **({} if weights else RANDOM_GUIDANCE), **flags})
        plain = load_config(bundle_dir, overlays, {"device": device, **RANDOM_GUIDANCE, **(overrides or {}),
                                                   "use_flash_attention": False, "channels_last": False})
        dev = torch.device(device)
        set_tf32(parser.get("tf32", False))
        network, inferer = parser.get_parsed_content("network").eval(), parser.get_parsed_content("inferer")
        if weights:
            load_weights(network, os.path.join(weights, "model.pt"), "diffusion model checkpoint", map_location=dev)
            inferer.guidance.checkpoint = os.path.join(weights, "regressor.pt")
        inferer.load()
        plain_network, plain_regressor = plain.get_parsed_content("network").eval(), plain.get_parsed_content("regressor").eval()
        plain_network.load_state_dict(network.state_dict())  # also checks that the speed flags keep the state dict
        plain_regressor.load_state_dict(inferer.guidance.network.state_dict())
        for p in plain_regressor.parameters():
            p.requires_grad_(False)
        sampler = inferer.sampler
        sampler.progress = False
        level, stride = sampler.noise_level, sampler.stride
        run_level = min(level, extrapolate_steps * stride) if extrapolate_steps else level
        targets = growth_targets(parser.get("desired_values", ()), parser.get("fixed_scales", ()))
        k = len(targets)
        size = int(parser.get_parsed_content("image_size"))
        x = torch.rand(cases, network.in_channels, size, size, device=dev)
        desired = torch.tensor([t["desired_value"] for t in targets] * cases, device=dev)
        fixed = torch.tensor([t["fixed_scale"] for t in targets] * cases, device=dev)
        scale = inferer.guidance.gradient_scale

        def run(level_now):
            sampler.noise_level = level_now
            project = lambda: inferer(x, network, repeats=k, desired_value=desired, fixed_scale=fixed)  # noqa: E731
            monai = lambda: plain_monai_translation(plain_network, plain_regressor, sampler.scheduler,  # noqa: E731
                                                    x.repeat_interleave(k, 0), level_now, stride, scale, desired, fixed)
            return {"project": project, "monai": monai}

        for fn in run(stride).values():  # warm-up: one step each way
            fn()
        sampler.network_evaluations = 0
        seconds = {name: t * level / run_level / (cases * k) for name, t in _alternating(run(run_level), dev, repeats).items()}
        evaluations = sampler.network_evaluations / (repeats * cases * k)
        sampler.noise_level = level
        rows.append({
            "size": os.path.basename(overlays[0]).split(".")[0] if overlays else "paper", "device": device_name(dev),
            "image_size": size, "cases": cases, "targets": k, "noise_level": level, "stride": stride,
            "flags": ", ".join(f"{key}={value}" for key, value in variant.items()) or "config defaults",
            "project_s_per_image": round(seconds["project"], 4), "monai_s_per_image": round(seconds["monai"], 4),
            "speedup": round(seconds["monai"] / seconds["project"], 2),
            "project_unet_evaluations_per_image": round(evaluations * level / run_level, 1),
            "monai_unet_evaluations_per_image": 2 * level // stride,
            "timed_steps": f"{run_level // stride} of {level // stride} each way" + (" (extrapolated)" if run_level < level else ""),
        })
        if on_row is not None:
            on_row(rows[-1])
    return rows
