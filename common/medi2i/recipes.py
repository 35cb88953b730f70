"""Run a bundle end to end on synthetic data: the README's demo, the verify tool and the tests all use this.

A bundle describes its recipe in ``configs/demo.json``: the file is an overlay of size overrides (merged into
every config of the run) plus a ``demo`` entry that MONAI ignores::

    "demo": {
        "data": {"generator": "brats_phantoms", "num_cases": 32, "shape": [64, 64, 32], "seed": 0},
        "weights": "models/demo",                  # committed demo weights (optional)
        "train": [{"config": "train_diffusion.json", "overrides": {...}}, ...],
        "run": [{"config": "inference.json", "overrides": {...}}, {"config": "evaluate.json"}],
        "tiny": {"data": {...}, "overrides": {...}, "steps": {"train_diffusion.json": {...}}}
    }

Each step is ``monai.bundle.run`` with ``bundle_root`` set to the output folder (so ``models/``, ``runs/``,
``outputs/`` and ``eval/`` land there), ``dataset_dir`` set to the generated slices, and ``ckpt_dir`` set to the
demo weights when they are used instead of training.

A ``"real"`` entry inside ``demo`` is the same recipe on real public data (``real=True``): its ``data`` names a
reader (``brats_slices``, ``radiograph_slices``, ...) and a ``source`` folder under ``data_root`` (the collection's
``../shared/data`` by default) to train on, ``inputs`` the held-out cases the run steps translate (never trained
on), ``weights`` the committed real-data weights and ``overrides`` the sizes of its networks::

    "real": {"data": {"generator": "brats_slices", "source": "brats2018_train", "image_size": 64},
             "inputs": ["brats2018/Brats18_TCIA01_201_1"], "weights": "models/real",
             "overrides": {...}, "train": [...], "run": [...]}

``test_data`` (a generator like ``data``, e.g. every 3rd tumour slice of the held-out cases) replaces ``inputs``
with the test section of the datalist it writes (or, with ``"as_dataset_dir": true``, is the run steps'
``dataset_dir``, so that they choose from its test section themselves, e.g. healthy slices to inpaint).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable

import torch
from monai.bundle import run as bundle_run

from .data.contrast_slices import build_contrast_datalist, contrast_phantoms
from .data.datalist import _relative_case, build_slice_datalist, split_cases
from .data.images2d import build_image_datalist
from .data.io import save_json
from .data.multimodal import brats_volume_phantoms, multimodal_cases
from .data.phantoms import write_phantom_dataset
from .data.phantoms2d import phantom_datalist
from .errors import require


def _brats_phantoms(folder: str, num_cases: int = 32, shape=(64, 64, 32), seed: int = 0, image_size: int = 64,
                    healthy_fraction: float = 0.25) -> str:
    """Phantom BraTS cases plus their slice datalist; returns the dataset_dir (folder holding datalist.json)."""
    slices = os.path.join(folder, "slices")
    if not os.path.isfile(os.path.join(slices, "datalist.json")):
        write_phantom_dataset(os.path.join(folder, "phantoms"), num_cases=num_cases, shape=shape, seed=seed,
                              healthy_fraction=healthy_fraction)
        build_slice_datalist(os.path.join(folder, "phantoms"), slices, image_size=image_size, seed=seed)
    return slices


def _brats_slices(folder: str, source: str, image_size: int = 64, val_fraction: float = 0.15,
                  test_fraction: float = 0.0, seed: int = 0, min_tumour_size: float = 0.0, every: int = 1) -> str:
    """Real BraTS cases under ``source`` as a slice datalist in ``folder`` (kept when already there). For held-out
    sets, the test section can keep only slices whose relative tumour size is at least ``min_tumour_size``, and of
    those every ``every``-th."""
    datalist = os.path.join(folder, "datalist.json")
    if not os.path.isfile(datalist):
        build_slice_datalist(source, folder, image_size=image_size, val_fraction=val_fraction,
                             test_fraction=test_fraction, seed=seed)
        with open(datalist) as f:
            content = json.load(f)
        kept = [e for e in content["test"] if e["relative_tumour_size"] >= min_tumour_size]
        content["test"] = kept[:: max(1, int(every))]
        save_json(content, datalist)
    return folder


def _radiograph_slices(folder: str, source: str, image_size: int = 64, val_fraction: float = 0.1,
                       test_fraction: float = 0.0, seed: int = 0) -> str:
    """Real radiographs under ``source`` as a datalist of ``image_size`` slices in ``folder``."""
    if not os.path.isfile(os.path.join(folder, "datalist.json")):
        build_image_datalist(source, folder, "radiographs", image_size, val_fraction, test_fraction, seed)
    return folder


def _contrast_slices(folder: str, source: str, test_source: str | None = None, image_size: int = 64,
                     val_fraction: float = 0.15, test_fraction: float = 0.0, seed: int = 0) -> str:
    """Contrast-labelled slices of the real BraTS cases under ``source`` (training/validation/test by
    ``test_fraction``) and, as the test section, of the held-out cases under ``test_source``; returns ``folder``
    (kept when already there)."""
    datalist = os.path.join(folder, "datalist.json")
    if not os.path.isfile(datalist):
        build_contrast_datalist({"brats": source}, folder, image_size=image_size, val_fraction=val_fraction,
                                test_fraction=test_fraction, seed=seed)
        if test_source:
            held_out = build_contrast_datalist({"brats": test_source}, os.path.join(folder, "test"), image_size=image_size,
                                               val_fraction=0.0, test_fraction=1.0, seed=seed)
            with open(datalist) as f, open(held_out) as g:
                content, test = json.load(f), json.load(g)
            content["test"] = [{**e, "image": os.path.join("test", e["image"])} for e in test["test"]]
            save_json(content, datalist)
    return folder


def _brats_volumes(folder: str, source: str, test_source: str | None = None, val_fraction: float = 0.15,
                   seed: int = 0) -> str:
    """A volume datalist in ``folder`` (paths relative to it) of the real cases under ``source`` (training and
    validation) and the held-out cases under ``test_source`` (test); returns ``folder``."""
    datalist = os.path.join(folder, "datalist.json")
    if not os.path.isfile(datalist):
        sections = split_cases(multimodal_cases(source), val_fraction, 0.0, seed)
        sections["test"] = multimodal_cases(test_source) if test_source else []
        content = {"description": f"multi-modal volumes of {source}, held out: {test_source}", "seed": seed}
        content.update({name: [_relative_case(c, folder) for c in cases] for name, cases in sections.items()})
        os.makedirs(folder, exist_ok=True)
        save_json(content, datalist)
    return folder


#: generator name in a recipe -> function(folder, **args) returning the dataset_dir
GENERATORS: dict[str, Callable[..., str]] = {"brats_phantoms": _brats_phantoms}
GENERATORS["image2d_phantoms"] = phantom_datalist  # Med-cDiff bundles: pelvis T2 volumes or chest radiographs
GENERATORS["brats_volume_phantoms"] = brats_volume_phantoms  # ALDM: 3D volumes + volume datalist
GENERATORS["contrast_phantoms"] = contrast_phantoms
GENERATORS["brats_slices"] = _brats_slices
GENERATORS["radiograph_slices"] = _radiograph_slices
GENERATORS["contrast_slices"] = _contrast_slices
GENERATORS["brats_volumes"] = _brats_volumes
#: where the real recipes' ``source`` and ``inputs`` are looked up by default: the collection's ../shared/data
DATA_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))


def load_recipe(bundle_dir: str, real: bool = False) -> tuple[dict, dict]:
    """``(overrides, recipe)`` from ``<bundle_dir>/configs/demo.json``; ``real`` gives the recipe's ``real`` entry."""
    path = os.path.join(bundle_dir, "configs", "demo.json")
    require(os.path.isfile(path), bundle_dir, "bundle has no configs/demo.json recipe")
    with open(path) as f:
        overlay = json.load(f)
    recipe = overlay.pop("demo", None)
    require(isinstance(recipe, dict), path, "has no 'demo' recipe entry")
    if real:
        require(isinstance(recipe.get("real"), dict), path, "has no real-data recipe ('real' entry)")
        recipe = recipe["real"]
    return overlay, recipe


def run_step(bundle_dir: str, config: str, overrides: dict) -> float:
    """``monai.bundle run`` of one config merged with the demo overlay; returns seconds taken."""
    configs = os.path.join(bundle_dir, "configs")
    start = time.perf_counter()
    bundle_run(config_file=[os.path.join(configs, config), os.path.join(configs, "demo.json")],
               meta_file=os.path.join(configs, "metadata.json"), logging_file=os.path.join(configs, "logging.conf"),
               **overrides)
    return time.perf_counter() - start


def run_recipe(bundle_dir: str, output_dir: str, tiny: bool = False, retrain: bool = False,
               extra_overrides: dict | None = None, real: bool = False, data_root: str = DATA_ROOT,
               variant: str | None = None) -> dict:
    """Generate the data, train (unless demo weights are used), run inference and evaluation.

    ``tiny`` uses the recipe's tiny sizes and always trains (a smoke run of every config in order); ``variant`` names
    another such entry of the recipe (e.g. ALDM's ``short``: data, overrides and per-step settings over the demo
    recipe's), which also always trains. ``real`` uses
    the recipe's ``real`` entry: real training data under ``data_root``, its held-out ``inputs``, its weights.
    Returns ``{"seconds": {step: s}, "output_dir": ..., "ckpt_dir": ...}``.
    """
    bundle_dir, output_dir = os.path.abspath(bundle_dir), os.path.abspath(output_dir)
    _, recipe = load_recipe(bundle_dir, real)
    variant = "tiny" if tiny else variant
    require(variant is None or isinstance(recipe.get(variant), dict), os.path.join(bundle_dir, "configs", "demo.json"),
            f"has no recipe variant {variant!r}")
    tiny_spec = _variant(recipe, variant) if variant else {}
    data = {**recipe["data"], **tiny_spec.get("data", {})}
    generator = GENERATORS[data.pop("generator")]
    if real:
        data.update({key: _under(data_root, data[key]) for key in ("source", "test_source") if data.get(key)})
    weights = recipe.get("weights")
    use_weights = weights and not variant and not retrain and os.path.isdir(os.path.join(bundle_dir, weights))
    timings: dict[str, float] = {}
    start = time.perf_counter()
    dataset_dir = os.path.join(output_dir, "data")
    if not (real and use_weights and ("inputs" in recipe or "test_data" in recipe)):  # else only the held-out set is read
        dataset_dir = generator(dataset_dir, **data)
    timings["data"] = time.perf_counter() - start
    base = {"bundle_root": output_dir, "dataset_dir": dataset_dir, **recipe.get("overrides", {})}
    ckpt_dir = os.path.join(bundle_dir, weights) if use_weights else os.path.join(output_dir, "models")
    run_base = {"inputs": [_under(data_root, p) for p in recipe["inputs"]]} if "inputs" in recipe else {}
    if "test_data" in recipe:  # held-out cases as a slice datalist: the run steps translate its test section
        test = dict(recipe["test_data"])
        as_dataset = test.pop("as_dataset_dir", False)  # the run configs pick their own inputs from its test section
        test_dir = GENERATORS[test.pop("generator")](os.path.join(output_dir, "test_data"), **{**test, "source": _under(data_root, test["source"])})
        run_base = {"dataset_dir": test_dir} if as_dataset else {"inputs": os.path.join(test_dir, "datalist.json"), "datalist_section": "test"}
    steps = [(s, {}) for s in ([] if use_weights else recipe.get("train", []))] + [(s, run_base) for s in recipe.get("run", [])]
    for step, extra in steps:
        overrides = {**base, **extra, **step.get("overrides", {}), **tiny_spec.get("overrides", {}),
                     **tiny_spec.get("steps", {}).get(step["config"], {}), **_siblings(bundle_dir, step),
                     **(extra_overrides or {}), "ckpt_dir": ckpt_dir}
        timings[step["config"]] = run_step(bundle_dir, step["config"], overrides)
    return {"seconds": timings, "output_dir": output_dir, "ckpt_dir": ckpt_dir, "dataset_dir": dataset_dir}


def _siblings(bundle_dir: str, step: dict) -> dict:
    """A step's ``sibling_bundles`` (config key -> name of another bundle of this collection) as that bundle's
    path; one that is not beside ``bundle_dir`` (an exported bundle on its own) is left out: the key keeps its
    default."""
    siblings = step.get("sibling_bundles", {})
    paths = {key: os.path.join(os.path.dirname(bundle_dir), name) for key, name in siblings.items()}
    return {key: path for key, path in paths.items() if os.path.isdir(path)}


def _variant(recipe: dict, name: str) -> dict:
    """The recipe's variant ``name``; one that ``extends`` another takes that one's entries under its own."""
    spec = dict(recipe[name])
    base = _variant(recipe, spec.pop("extends")) if "extends" in spec else {}
    steps = {k: {**base.get("steps", {}).get(k, {}), **v} for k, v in {**base.get("steps", {}), **spec.get("steps", {})}.items()}
    return {**base, **spec, **{k: {**base.get(k, {}), **spec.get(k, {})} for k in ("data", "overrides")}, "steps": steps}


def _under(root: str, path: str) -> str:
    """``path`` under ``root`` (one-line error naming it when absent)."""
    full = os.path.join(root, path)
    require(os.path.exists(full), full, f"real data not found (set data_root; see {os.path.join(root, 'SOURCES.md')})")
    return full


def _cast_floats(state, dtype: torch.dtype):
    """``state`` (a state dict, possibly nested) with its floating-point tensors in ``dtype``."""
    if isinstance(state, dict):
        return {key: _cast_floats(value, dtype) for key, value in state.items()}
    return state.to(dtype) if torch.is_tensor(state) and torch.is_floating_point(state) else state


def save_recipe_weights(bundle_dir: str, ckpt_dir: str, real: bool = False) -> str:
    """Copy the ``.pt`` files a training run left in ``ckpt_dir`` into the recipe's ``weights`` folder (each written
    to a temporary name, then renamed). With ``"weights_dtype": "float16"`` in the recipe, floating-point tensors are
    stored in half precision (half the size; ``load_state_dict`` casts them back to the network's float32)."""
    recipe = load_recipe(bundle_dir, real)[1]
    target = os.path.join(bundle_dir, recipe["weights"])
    dtype = getattr(torch, recipe["weights_dtype"]) if "weights_dtype" in recipe else None
    os.makedirs(target, exist_ok=True)
    for name in sorted(n for n in os.listdir(ckpt_dir) if n.endswith(".pt")):
        source, path = os.path.join(ckpt_dir, name), os.path.join(target, name)
        if dtype is None:
            shutil.copy2(source, path + ".part")
        else:
            state = torch.load(source, map_location="cpu", weights_only=True)
            torch.save(_cast_floats(state, dtype), path + ".part")
        os.replace(path + ".part", path)
    return target
