"""One DDPM for all guidances: keep a bundle's description of the diffusion model identical to another's.

The tumour-inpainting bundle uses the DDPM that the tumour-growth bundle's ``train_diffusion.json`` trains.
Each bundle must still run on its own once exported, so the target bundle carries a *generated* copy of
``train_diffusion.json`` and the same DDPM keys (network, scheduler, sizes, also in ``demo.json``'s overrides)
in its inference configs. :func:`sync_diffusion` writes them from the source bundle, or with ``write=False``
lists what differs (the test that both bundles describe the same network uses it).
"""

from __future__ import annotations

import json
import os

from .data.io import save_json

DIFFUSION_CONFIG = "train_diffusion.json"
#: keys of an inference config that describe the DDPM and its noise schedule
DDPM_KEYS = ("num_train_timesteps", "learn_sigma", "norm_num_groups", "ddpm_channels", "ddpm_attention_levels",
             "ddpm_num_res_blocks", "network_def", "scheduler")
#: DDPM size keys of demo.json (top level and ``demo.tiny.overrides``)
DEMO_KEYS = ("image_size", "norm_num_groups", "ddpm_channels", "ddpm_attention_levels", "ddpm_num_res_blocks")
GENERATED = "_generated"


def _read(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _tiny(demo: dict) -> dict:
    return demo.get("demo", {}).get("tiny", {}).get("overrides", {})


def sync_diffusion(source_bundle: str, target_bundle: str, inference_configs=("inference.json",),
                   write: bool = True) -> list[str]:
    """Make ``target_bundle`` describe the same DDPM as ``source_bundle``; return the differences found
    (before writing). ``write=False`` only reports them."""
    src, dst = os.path.join(source_bundle, "configs"), os.path.join(target_bundle, "configs")
    changes: list[str] = []
    train = _read(os.path.join(src, DIFFUSION_CONFIG))
    train[GENERATED] = (f"copy of {os.path.basename(os.path.normpath(source_bundle))}/configs/{DIFFUSION_CONFIG} "
                        "written by tools/sync_configs.py: edit that file, then re-run the tool")
    target_train = os.path.join(dst, DIFFUSION_CONFIG)
    if not os.path.isfile(target_train) or _read(target_train) != train:
        changes.append(f"{DIFFUSION_CONFIG} differs from the source's")
    updates = {DIFFUSION_CONFIG: train}
    overlay = os.path.join(src, "multi_gpu_train.json")
    if os.path.isfile(overlay):  # the source's multi-GPU overlay of train_diffusion.json
        name = "multi_gpu_train_diffusion.json"
        if not os.path.isfile(os.path.join(dst, name)) or _read(os.path.join(dst, name)) != _read(overlay):
            changes.append(f"{name} differs from the source's multi_gpu_train.json")
        updates[name] = _read(overlay)
    source_infer = _read(os.path.join(src, "inference.json"))
    for name in inference_configs:
        config = _read(os.path.join(dst, name))
        for key in DDPM_KEYS:
            if config.get(key) != source_infer[key]:
                changes.append(f"{name}: '{key}' differs")
                config[key] = source_infer[key]
        updates[name] = config
    source_demo, demo = _read(os.path.join(src, "demo.json")), _read(os.path.join(dst, "demo.json"))
    for where, get in (("demo.json", lambda d: d), ("demo.json tiny overrides", _tiny)):
        for key in DEMO_KEYS:
            if key in get(source_demo) and get(demo).get(key) != get(source_demo)[key]:
                changes.append(f"{where}: '{key}' differs")
                get(demo)[key] = get(source_demo)[key]
    updates["demo.json"] = demo
    if write:
        for name, config in updates.items():
            if any(change.startswith(name) for change in changes):
                save_json(config, os.path.join(dst, name))
    return changes
