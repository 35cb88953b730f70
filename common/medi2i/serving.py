"""Serving bundles: :func:`bundle_infer` runs ``inference.json`` the way MONAI Label's ``BundleInferTask`` does, on
one image, without a server; :func:`prepare_monailabel_bundle`, :data:`APP_MAIN` and :func:`write_monailabel_app`
make what the real MONAI Label 0.8.5 server serves with its stock ``BundleInferTask`` (``extend_load_image=False,
add_post_restore=False``; ``tests/test_monailabel.py``, README "Serving with MONAI Label").

MONAI Label reads ``network_def``, ``preprocessing``, ``inferer`` and ``postprocessing`` from the config, loads
``models/model.pt`` into the network, applies ``preprocessing`` to ``{"image": <path>}``, calls
``inferer(inputs, network)`` on the batched image, puts the result under ``pred``, applies ``postprocessing`` and
writes ``pred`` with the image's metadata.
"""

from __future__ import annotations

import os

import torch

from .benchmark import load_config
from .data.io import save_nifti
from .errors import apply_unwrapped, require
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



# --------------------------------------------------------------------------------------------------------------------
# The real MONAI Label server (``monailabel`` 0.8.5): a bundle folder its ``BundleInferTask`` serves as it is.
# --------------------------------------------------------------------------------------------------------------------

#: request parameters a served bundle exposes when its config has them (``displayable_configs``: MONAI Label copies
#: these from each ``/infer`` request into the config before building pre/postprocessing and the inferer)
REQUEST_PARAMS = ("slice_index", "contrast", "guidance_weight", "target", "desired_value", "output_channel")


class MonaiLabelOutputd:
    """Last postprocessing step when served by MONAI Label (``add_post_restore=False``): ``pred`` as its ``Writer``
    writes it correctly — a channel-last float array ``(H, W, D)`` (one channel: ``output_channel`` of a multi-channel
    image, e.g. FLAIR of a BraTS slice) with the input's affine under ``pred_meta_dict``, written as NIfTI whatever
    the input's extension (a float PNG cannot be written; a 4D channel-first array would become ``.seg.nrrd``)."""

    def __init__(self, keys="pred", output_channel: int = 0, extension: str = ".nii.gz"):
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        self.output_channel, self.extension = int(output_channel), extension

    def __call__(self, data):
        import numpy as np
        from monai.data import MetaTensor

        d = dict(data)
        for key in self.keys:
            pred = d[key]
            affine = pred.affine if isinstance(pred, MetaTensor) else None
            array = torch.as_tensor(pred).detach().float().cpu()
            channel = self.output_channel if array.shape[0] > 1 else 0
            array = array[channel]
            if array.ndim == 2:
                array = array[..., None]
            d[key] = array.numpy().astype(np.float32)
            meta = dict(d.get(f"{key}_meta_dict") or {})
            meta["affine"] = None if affine is None else torch.as_tensor(affine).double().numpy()
            d[f"{key}_meta_dict"] = meta
        d["result_extension"], d["result_dtype"] = self.extension, "float32"
        return d


#: where a served bundle keeps the weights MONAI Label must not offer as ``model_filename``: it lists
#: ``models/*.pt`` shortest name first and loads the first into ``network_def`` (``spade.pt`` ties with ``model.pt``)
HELPERS = "models/helpers"


def loaded(network: torch.nn.Module, path: str, what: str = "checkpoint") -> torch.nn.Module:
    """``network`` with the weights of ``path`` (the helper networks of a served bundle that MONAI Label does not load
    itself: it loads only ``network_def`` from ``models/model.pt``), in eval mode."""
    return load_weights(network, path, what, map_location=next(network.parameters()).device).eval()


def bundle_network(bundle_dir: str, key: str, checkpoint: str, overlays=("demo.json",),
                   device="cpu") -> torch.nn.Module:
    """Network ``key`` of another bundle's ``inference.json`` (+ ``overlays``) with the weights ``checkpoint`` (a path
    inside ``bundle_dir``), in eval mode on ``device``: e.g. the tumour-inpainting bundle's segmenter, which the
    growth evaluation uses as an independent tumour measure."""
    require(os.path.isfile(os.path.join(bundle_dir, "configs", "inference.json")), bundle_dir,
            "is not a bundle (no configs/inference.json)")
    parser = load_config(bundle_dir, overlays, {"device": f"$torch.device('{torch.device(device)}')"})
    return loaded(parser.get_parsed_content(key).to(device), os.path.join(bundle_dir, checkpoint), f"{key} checkpoint")


def monailabel_config(bundle_dir: str, overlays=("demo.json",), overrides: dict | None = None,
                      params=REQUEST_PARAMS) -> dict:
    """``inference.json`` + ``overlays`` (+ ``overrides``) merged into one config ``BundleInferTask`` reads: the
    ``post_transforms`` it prefers end with :class:`MonaiLabelOutputd`, and the ``params`` present become
    ``displayable_configs`` (request parameters)."""
    from monai.bundle import ConfigParser

    files = [os.path.join(bundle_dir, "configs", "inference.json")]
    files += [o if os.path.sep in o else os.path.join(bundle_dir, "configs", o) for o in overlays]
    parser = ConfigParser()
    parser.read_config([f for f in files if os.path.isfile(f)])
    config = dict(parser.config)
    config.update(overrides or {})
    config.pop("bundle_root", None)  # MONAI Label sets it to the served folder
    if "autoencoder_def" in config and isinstance(config.get("inferer"), dict):  # latent translation (ALDM)
        config["imports"] = list(config.get("imports", [])) + ["$import medi2i.serving"]
        config.setdefault("target", (config.get("targets") or config["modalities"])[0])
        config["inferer"] = {**config["inferer"], "target": "$@modalities.index(@target)"}
        for key, file_key, what in (("autoencoder", "autoencoder_file", "autoencoder"), ("spade", "spade_file", "MS-SPADE")):
            if file_key in config and f"{key}_def" in config:
                config[key] = (f"$medi2i.serving.loaded(@{key}_def.to(@device), @bundle_root + '/{HELPERS}/' + @{file_key}, "
                               f"'{what} checkpoint')")
    config.setdefault("output_channel", 3 if "modalities" in config or "image_channels" not in config else 0)
    exposed = {k: config[k] for k in params if k in config and not (isinstance(config[k], str) and config[k][:1] in "$@")}
    if exposed:
        config["displayable_configs"] = exposed
        for k in exposed:
            config[k] = f"@displayable_configs#{k}"
    config["post_transforms"] = {"_target_": "Compose", "transforms": [
        "@postprocessing", {"_target_": "medi2i.serving.MonaiLabelOutputd", "keys": "pred",
                            "output_channel": "@output_channel"}]}
    return config


def prepare_monailabel_bundle(bundle_dir: str, model_dir: str, weights: str | None = "shipped",
                              overlays=("demo.json",), overrides: dict | None = None, name: str | None = None,
                              vendor: bool = True) -> str:
    """Write ``<model_dir>/<name>/``: the bundle as MONAI Label's ``BundleInferTask`` serves it — one merged
    ``configs/inference.json`` (:func:`monailabel_config`), ``configs/metadata.json``, the ``*.pt`` of ``weights``
    (a folder, relative to the bundle or absolute; ``"shipped"``: the bundle's ``models/demo``, else ``models/real``)
    in ``models/``, and the shared package vendored (``vendor``)."""
    import json
    import shutil

    import medi2i

    from .export import RUN_PRODUCTS, shipped_weights

    bundle_dir = os.path.abspath(bundle_dir)
    name = name or os.path.basename(os.path.normpath(bundle_dir))
    dest = os.path.join(model_dir, name)
    shutil.copytree(bundle_dir, dest, ignore=shutil.ignore_patterns(*RUN_PRODUCTS, "models"), dirs_exist_ok=True)
    os.makedirs(os.path.join(dest, "models"), exist_ok=True)
    config = monailabel_config(bundle_dir, overlays, overrides)
    helpers = {config[k] for k in ("autoencoder_file", "spade_file") if "autoencoder_def" in config and k in config}
    if weights == "shipped":
        weights = shipped_weights(bundle_dir)
    if weights:
        src = weights if os.path.isabs(weights) else os.path.join(bundle_dir, weights)
        for f in sorted(os.listdir(src)):
            if f.endswith(".pt"):
                folder = os.path.join(dest, HELPERS) if f in helpers else os.path.join(dest, "models")
                os.makedirs(folder, exist_ok=True)
                shutil.copy2(os.path.join(src, f), os.path.join(folder, f))
    with open(os.path.join(dest, "configs", "inference.json"), "w") as f:
        json.dump(config, f, indent=4)
        f.write("\n")
    if vendor:
        shutil.copytree(os.path.dirname(os.path.abspath(medi2i.__file__)), os.path.join(dest, "medi2i"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    return dest


#: ``main.py`` of a MONAI Label app serving every bundle folder under the app's ``model/`` with the stock
#: ``BundleInferTask`` (``extend_load_image=False``: MONAI Label's image loader would require the optional ``mask``
#: key of the Med-cDiff bundles; ``add_post_restore=False``: the bundle restores the input's grid itself)
APP_MAIN = '''import os

from monailabel.interfaces.app import MONAILabelApp
from monailabel.tasks.infer.bundle import BundleInferTask


class MyApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        self.model_dir = os.path.join(app_dir, "model")
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="medi2i",
                         description="medi2i image-to-image bundles", version="1")

    def init_infers(self):
        infers = {}
        for name in sorted(os.listdir(self.model_dir)):
            path = os.path.join(self.model_dir, name)
            if os.path.isfile(os.path.join(path, "configs", "inference.json")):
                task = BundleInferTask(path, self.conf, extend_load_image=False, add_post_restore=False)
                if task.is_valid():
                    infers[name] = task
        return infers
'''


def write_monailabel_app(app_dir: str) -> str:
    """Create ``app_dir`` with :data:`APP_MAIN` as its ``main.py`` and an empty ``model/``; return ``app_dir``."""
    os.makedirs(os.path.join(app_dir, "model"), exist_ok=True)
    with open(os.path.join(app_dir, "main.py"), "w") as f:
        f.write(APP_MAIN)
    return app_dir
