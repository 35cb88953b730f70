"""Run a bundle's ``inference.json`` the way MONAI Label's ``BundleInferTask`` does, on one image.

MONAI Label reads ``network_def``, ``preprocessing``, ``inferer`` and ``postprocessing`` from the config, loads
``models/model.pt`` into the network, applies ``preprocessing`` to ``{"image": <path>}``, calls
``inferer(inputs, network)`` on the batched image, puts the result under ``pred``, applies ``postprocessing`` and
writes ``pred`` with the image's metadata. :func:`bundle_infer` does the same steps without a MONAI Label server
(``monailabel`` needs torchvision), so the contract is testable anywhere; serve a bundle with
``add_post_restore=False`` (see the collection README).
"""

from __future__ import annotations

import os

import torch

from .benchmark import load_config
from .data.io import save_nifti
from .errors import apply_unwrapped
from .networks.checkpoints import load_weights


def bundle_infer(bundle_dir: str, image: str, output: str | None = None, overrides: dict | None = None,
                 overlays: tuple[str, ...] = (), model_file: str = "models/model.pt", device: str = "cpu") -> torch.Tensor:
    """Infer one image through ``<bundle_dir>/configs/inference.json`` (+ ``overlays``, config files merged on top:
    paths, or bare names in ``configs/``); return ``pred`` and write it as NIfTI (with the input's affine) when
    ``output`` is given."""
    parser = load_config(bundle_dir, overlays, {"device": f"$torch.device('{device}')", **(overrides or {})})
    network = parser.get_parsed_content("network_def").to(device)
    # BasicInferTask loads checkpoint.get("model", checkpoint); load_weights accepts both forms
    load_weights(network, os.path.join(bundle_dir, model_file), "model checkpoint", map_location=device).eval()
    data = apply_unwrapped(parser.get_parsed_content("preprocessing"), {"image": image})
    inputs = torch.as_tensor(data["image"])[None].to(device)
    data["pred"] = parser.get_parsed_content("inferer")(inputs, network)[0].detach().cpu()
    data = apply_unwrapped(parser.get_parsed_content("postprocessing"), data)
    if output is not None:
        save_nifti(data["pred"], output)
    return data["pred"]

