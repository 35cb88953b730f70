"""Checks every bundle of the collection must pass (the verify tool and ``tests/test_collection.py`` run them).

Static checks read the files only: the model zoo's required and preferred files, metadata keys and the
version/changelog rule, every ``install_requires`` package of setup.cfg in the metadata, docs sections, file
sizes, paths in configs, a multi-GPU overlay per training config.
Run checks use a tiny run of the bundle's recipe (train -> infer -> evaluate on phantoms): every config
instantiates, MONAI's workflow properties (missing ones must be explained in the docs), TorchScript export
(or the reason on a ``TorchScript:`` line of the docs), and the standalone export running outside the repository.
"""

from __future__ import annotations

import configparser
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
import zipfile

from monai.bundle import ConfigParser, ConfigWorkflow

from .export import RUN_PRODUCTS, export_bundle, shipped_weights
from .recipes import load_recipe, run_recipe

REQUIRED_FILES = ("LICENSE", "configs/metadata.json", "configs/inference.json", "configs/evaluate.json",
                  "configs/logging.conf", "configs/demo.json", "docs/README.md", "docs/data_license.txt")
METADATA_KEYS = ("version", "changelog", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
                 "task", "description", "authors", "copyright", "intended_use", "references", "data_source",
                 "data_type", "image_classes", "label_classes", "pred_classes", "eval_metrics", "network_data_format")
DOC_SECTIONS = ("Overview", "Data", "Training configuration", "Performance", "Bundle commands",
                "Deviations from the paper", "MONAI workflow properties", "MONAI Label", "Multi-GPU training",
                "References", "License")
MAX_FILE_MB = 25
#: strings in configs that point at one machine
PERSONAL_PATH = re.compile(r"^(/|~)|/home/|/Users/|/root/|/work/|[A-Za-z]:\\")
#: configs that are overlays merged into others (demo sizes, multi-GPU, ablations), not runnable on their own
OVERLAY_PATTERNS = ("demo.json", "multi_gpu*.json", "ablation_*.json")
NOT_COMPONENTS = ("imports", "run", "initialize", "finalize", "demo")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: install_requires of setup.cfg that metadata records under their own key, not in required_packages_version
VERSION_KEYS = {"torch": "pytorch_version", "monai": "monai_version", "numpy": "numpy_version"}


def overlays(bundle: str) -> set[str]:
    return {os.path.basename(p) for pat in OVERLAY_PATTERNS for p in glob.glob(os.path.join(bundle, "configs", pat))}


def runnable_configs(bundle: str) -> list[str]:
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(bundle, "configs", "*.json")))
    return [n for n in names if n != "metadata.json" and n not in overlays(bundle)]


def train_configs(bundle: str) -> list[str]:
    return [n for n in runnable_configs(bundle) if n.startswith("train")]


def multi_gpu_overlay(bundle: str, config: str) -> str | None:
    """The overlay for ``config``: ``multi_gpu_<config>`` or the bundle-wide ``multi_gpu_train.json``."""
    for name in (f"multi_gpu_{config}", "multi_gpu_train.json"):
        if os.path.isfile(os.path.join(bundle, "configs", name)):
            return name
    return None


def docs_text(bundle: str) -> str:
    path = os.path.join(bundle, "docs", "README.md")
    return open(path).read() if os.path.isfile(path) else ""


def docs_section(bundle: str, title: str) -> str:
    """Text of the ``## <title>`` section of the bundle's docs ('' when absent)."""
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", docs_text(bundle), re.M | re.S)
    return match.group(1) if match else ""


# ----------------------------------------------------------------------------------------------- static checks
def check_files(bundle: str) -> list[str]:
    problems = [f"missing {f}" for f in REQUIRED_FILES if not os.path.isfile(os.path.join(bundle, f))]
    return problems + ([] if train_configs(bundle) else ["no configs/train*.json"])


def check_metadata(bundle: str) -> list[str]:
    path = os.path.join(bundle, "configs", "metadata.json")
    if not os.path.isfile(path):
        return ["no metadata.json"]
    with open(path) as f:
        meta = json.load(f)
    problems = [f"metadata lacks '{k}'" for k in METADATA_KEYS if k not in meta]
    if "version" in meta and meta["version"] not in meta.get("changelog", {}):
        problems.append(f"version {meta['version']} is not a key of the changelog")
    if "medi2i" in meta.get("required_packages_version", {}):
        problems.append("required_packages_version lists 'medi2i', which no package index has (the export vendors it "
                        "and ships its wheel)")
    if "optional_packages_version" in meta:
        problems.append("'optional_packages_version' is deprecated (MONAI 1.6 replaces the required packages with it)")
    for name, fmt in ((k, v) for k, v in meta.items() if k.endswith("data_format")):
        if not (isinstance(fmt, dict) and fmt.get("inputs") and fmt.get("outputs")):
            problems.append(f"{name} needs non-empty inputs and outputs")
    fmt = meta.get("network_data_format", {})
    for side in ("inputs", "outputs"):
        first = next(iter(fmt.get(side, {}).values()), {})
        if first.get("type") != "image":
            problems.append(f"the first network_data_format {side[:-1]} must describe an image (type 'image')")
    return problems


def _canonical(package: str) -> str:
    return re.sub(r"[-_.]+", "-", package).lower()


def install_requires() -> list[str]:
    """Package names of ``install_requires`` in the repository's ``setup.cfg`` ([] outside the repository)."""
    cfg = configparser.ConfigParser()
    if not cfg.read(os.path.join(REPO, "setup.cfg")):
        return []
    lines = (ln.strip() for ln in cfg.get("options", "install_requires", fallback="").splitlines())
    return [re.split(r"[<>=!~;\[ ]", ln, maxsplit=1)[0] for ln in lines if ln and not ln.startswith("#")]


def check_packages(bundle: str) -> list[str]:
    """``import medi2i`` needs every ``install_requires`` package: the metadata must list each one."""
    path = os.path.join(bundle, "configs", "metadata.json")
    if not os.path.isfile(path):
        return ["no metadata.json"]
    with open(path) as f:
        meta = json.load(f)
    listed = {_canonical(k) for k in meta.get("required_packages_version", {})}
    return [f"required_packages_version lacks '{pkg}' (install_requires of setup.cfg)" for pkg in install_requires()
            if _canonical(pkg) not in listed and VERSION_KEYS.get(pkg) not in meta]


def check_docs(bundle: str) -> list[str]:
    text = docs_text(bundle)
    return [f"docs/README.md lacks a '## {s}' section" for s in DOC_SECTIONS if not re.search(rf"^## {re.escape(s)}\s*$", text, re.M)]


def check_sizes(bundle: str) -> list[str]:
    problems = []
    for folder, dirs, files in os.walk(bundle):
        dirs[:] = [d for d in dirs if d not in RUN_PRODUCTS]
        for name in files:
            size = os.path.getsize(os.path.join(folder, name)) / 2**20
            if size > MAX_FILE_MB:
                problems.append(f"{os.path.relpath(os.path.join(folder, name), bundle)} is {size:.1f} MB (> {MAX_FILE_MB} MB)")
    return problems


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _strings(value)


def check_paths(bundle: str) -> list[str]:
    problems = []
    for path in sorted(glob.glob(os.path.join(bundle, "configs", "*.json"))):
        with open(path) as f:
            config = json.load(f)
        for text in _strings(config):
            if PERSONAL_PATH.search(text.lstrip("$")):
                problems.append(f"{os.path.basename(path)}: absolute or personal path {text!r}")
    return problems


#: what every multi-GPU overlay must hold: (what, test on the overlay's JSON)
OVERLAY_PARTS = (
    ("a DistributedDataParallel network", lambda o: "DistributedDataParallel" in json.dumps(o.get("network", {}))),
    ("a DistributedSampler for the training dataloader",
     lambda o: o.get("train#dataloader#sampler") == "@train#sampler" and o.get("train#sampler", {}).get("_target_") == "DistributedSampler"),
    ("training handlers filtered by medi2i.engines.handlers_for_rank", lambda o: "handlers_for_rank" in str(o.get("train#trainer#train_handlers"))),
    ("medi2i.engines.distributed.setup in initialize", lambda o: "distributed.setup(" in json.dumps(o.get("initialize", []))),
    ("medi2i.engines.distributed.teardown in finalize", lambda o: "distributed.teardown(" in json.dumps(o.get("finalize", []))),
)


def check_overlays(bundle: str) -> list[str]:
    """A multi-GPU overlay per training config, each with the parts of :data:`OVERLAY_PARTS`."""
    problems = []
    for config in train_configs(bundle):
        overlay = multi_gpu_overlay(bundle, config)
        if overlay is None:
            problems.append(f"no multi-GPU overlay for {config} (multi_gpu_{config} or multi_gpu_train.json)")
            continue
        with open(os.path.join(bundle, "configs", overlay)) as f:
            content = json.load(f)
        problems += [f"{overlay} lacks {what}" for what, holds in OVERLAY_PARTS if not holds(content)]
    return problems


# ------------------------------------------------------------------------------------------------- model zoo CI
#: The model zoo's metadata schema as its CI uses it (``verify_metadata`` against the bundle's ``schema`` URL,
#: https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json, which
#: cannot be downloaded at run time here): its required fields and their types, encoded (not a verbatim copy), and
#: like it every ``<network>_data_format`` held to the ``network_data_format`` rules. Checked on 2026-12-04 against
#: the schema's published text: every bundle's metadata validates under both; this encoding is the stricter (it
#: also requires ``name``, ``changelog`` and an input ``modality``).
ZOO_SCHEMA_URL = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"
_IO = {"type": "object", "required": ["type", "format", "num_channels", "spatial_shape", "dtype", "value_range"],
       "properties": {"type": {"type": "string"}, "format": {"type": "string"}, "modality": {"type": "string"},
                      "num_channels": {"type": "integer"}, "spatial_shape": {"type": "array"},
                      "dtype": {"type": "string"}, "value_range": {"type": "array"},
                      "is_patch_data": {"type": "boolean"}, "channel_def": {"type": "object"}}}
ZOO_META_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["schema", "version", "changelog", "monai_version", "pytorch_version", "numpy_version",
                 "required_packages_version", "name", "task", "description", "authors", "copyright",
                 "network_data_format"],
    "properties": {
        "schema": {"type": "string"}, "version": {"type": "string"}, "changelog": {"type": "object"},
        "monai_version": {"type": "string"}, "pytorch_version": {"type": "string"}, "numpy_version": {"type": "string"},
        "required_packages_version": {"type": "object", "additionalProperties": {"type": "string"}},
        "name": {"type": "string"}, "task": {"type": "string"}, "description": {"type": "string"},
        "authors": {"type": "string"}, "copyright": {"type": "string"},
        "network_data_format": {"$ref": "#/definitions/network_io"},
    },
    "patternProperties": {"^[_a-zA-Z0-9]+_data_format$": {"$ref": "#/definitions/network_io"}},
    "definitions": {"network_io": {"type": "object", "required": ["inputs", "outputs"], "properties": {
        "inputs": {"type": "object", "minProperties": 1, "additionalProperties": {**_IO, "required": _IO["required"] + ["modality"]}},
        "outputs": {"type": "object", "minProperties": 1, "additionalProperties": _IO}}}},
}
#: the files ``ci/verify_bundle.py`` requires (necessary) and prefers (checked in ``min`` and ``regular`` mode)
ZOO_NECESSARY = ("configs/metadata.json", "LICENSE")
ZOO_PREFERRED = ("models/model.pt", "configs/inference.json")


def _read_large_files(bundle: str) -> list[dict]:
    for name in ("large_files.yml", "large_files.yaml", "large_files.json"):
        path = os.path.join(bundle, name)
        if os.path.isfile(path):
            parser = ConfigParser()
            return list(parser.load_config_file(path).get("large_files", []))
    return []


def check_model_zoo(bundle: str, exported: bool = False) -> list[str]:
    """What the model zoo's ``ci/verify_bundle.py`` checks in ``min`` and ``regular`` mode, without downloading:
    necessary and preferred files (``models/model.pt``: present, listed in ``large_files.yml``, or in the repository
    as ``models/demo/model.pt`` or ``models/real/model.pt``, which the export places there), version in the changelog, the metadata against
    :data:`ZOO_META_SCHEMA`, and ``large_files.yml`` entries complete (path, url, hash_val, hash_type)."""
    import jsonschema

    problems = [f"necessary file {f} is missing" for f in ZOO_NECESSARY if not os.path.isfile(os.path.join(bundle, f))]
    large = _read_large_files(bundle)
    for entry in large:
        missing = [k for k in ("path", "url", "hash_val", "hash_type") if not entry.get(k)]
        if missing:
            problems.append(f"large_files entry {entry.get('path', '?')} lacks {', '.join(missing)}")
    listed = {os.path.normpath(e.get("path", "")) for e in large}
    weights = (os.path.isfile(os.path.join(bundle, "models", "model.pt")) or os.path.normpath("models/model.pt") in listed
               or (not exported and shipped_weights(bundle) is not None))
    if not weights:
        problems.append("preferred file models/model.pt is neither present nor listed in large_files.yml")
    if not os.path.isfile(os.path.join(bundle, "configs", "inference.json")):
        problems.append("inference config file is not existing")
    path = os.path.join(bundle, "configs", "metadata.json")
    if os.path.isfile(path):
        with open(path) as f:
            meta = json.load(f)
        if meta.get("version") not in meta.get("changelog", {}):
            problems.append(f"version {meta.get('version')} is missing in 'changelog'")
        if meta.get("schema") != ZOO_SCHEMA_URL:
            problems.append(f"schema is not {ZOO_SCHEMA_URL}")
        for err in sorted(jsonschema.Draft7Validator(ZOO_META_SCHEMA).iter_errors(meta), key=str):
            where = "/".join(str(p) for p in err.absolute_path) or "metadata"
            problems.append(f"metadata schema: {where}: {err.message}")
    return problems


def check_json_format(bundle: str) -> list[str]:
    """pre-commit's ``pretty-format-json --no-sort-keys --indent=4`` and ``end-of-file-fixer`` (the model zoo's hooks):
    every JSON file of the bundle is exactly ``json.dumps(content, indent=4)`` plus one final newline."""
    problems = []
    for path in sorted(glob.glob(os.path.join(bundle, "**", "*.json"), recursive=True)):
        rel = os.path.relpath(path, bundle)
        if rel.split(os.sep)[0] in RUN_PRODUCTS:
            continue
        with open(path) as f:
            text = f.read()
        if text != json.dumps(json.loads(text), indent=4) + "\n":
            problems.append(f"{rel} is not pretty-printed (4-space indent, final newline)")
    return problems


def _fake_forward_arg(name: str, spec: dict):
    """A fake value for a non-image input of a ``*_data_format`` entry (timesteps, class labels, a context)."""
    import torch

    if spec.get("type") == "number":
        return torch.zeros(1, dtype=torch.long)
    shape = [int(s) for s in spec.get("spatial_shape", [])] or [1]
    return torch.zeros(1, *shape, int(spec.get("num_channels", 1)))


def check_net_in_out(bundle: str, overlays=("demo.json",), data_format: str | None = None,
                     spatial_shape: list[int] | None = None) -> list[str]:
    """MONAI's ``verify_net_in_out`` on ``network_def`` of ``inference.json`` (+ ``overlays``): fake data shaped by
    ``data_format`` (default ``ddpm_data_format`` where the metadata has it: the denoiser takes timesteps, so
    ``network_data_format``, which describes the whole translation, does not fit the network), its first input as
    the image and the others (timesteps, class labels, context) as extra forward arguments. ``spatial_shape``
    replaces the image's and the prediction's (a smaller one keeps a 3D check fast)."""
    from monai.bundle import verify_net_in_out

    meta_file = os.path.join(bundle, "configs", "metadata.json")
    with open(meta_file) as f:
        meta = json.load(f)
    key = data_format or ("ddpm_data_format" if "ddpm_data_format" in meta else "network_data_format")
    fmt = meta[key]
    (first, image), *others = fmt["inputs"].items()
    pred = next(iter(fmt["outputs"].values()))
    if spatial_shape is not None:
        image, pred = {**image, "spatial_shape": list(spatial_shape)}, {**pred, "spatial_shape": list(spatial_shape)}
    extra = {name: _fake_forward_arg(name, spec) for name, spec in others}
    files = [os.path.join(bundle, "configs", c) for c in ("inference.json", *overlays)
             if os.path.isfile(os.path.join(bundle, "configs", c))]
    verify_net_in_out(net_id="network_def", meta_file=meta_file, config_file=files, device="cpu", extra_forward_args=extra,
                      **{"_meta_#network_data_format": {"inputs": {"image": image}, "outputs": {"pred": pred}}})
    return []


STATIC_CHECKS = {"model zoo": check_model_zoo, "json format": check_json_format, "files": check_files,
                 "metadata": check_metadata, "packages": check_packages, "docs": check_docs, "file sizes": check_sizes, "config paths": check_paths, "multi-GPU overlays": check_overlays}


# ------------------------------------------------------------------------------------------------- run checks
def tiny_overrides(bundle: str, run: dict, config: str | None = None, **extra) -> dict:
    """Overrides that point ``config`` at a tiny run's data and checkpoints, at tiny size (then ``extra``)."""
    _, recipe = load_recipe(bundle)
    tiny = recipe.get("tiny", {})
    return {**tiny.get("overrides", {}), **tiny.get("steps", {}).get(config, {}), "bundle_root": run["output_dir"],
            "dataset_dir": run["dataset_dir"], "ckpt_dir": run["ckpt_dir"], **extra}


def config_files(bundle: str, *names: str) -> list[str]:
    return [os.path.join(bundle, "configs", n) for n in (*names, "demo.json")]


def instantiate_config(bundle: str, config: str, overrides: dict) -> None:
    """Parse ``config`` (+ the demo overlay) and instantiate every top-level component and expression."""
    parser = ConfigParser()
    parser.read_config(config_files(bundle, config))
    parser.update(overrides)
    parser.parse()
    for key in parser.get():
        if key not in NOT_COMPONENTS:
            parser.get_parsed_content(key)


def missing_properties(bundle: str, config: str, overrides: dict) -> list[str]:
    """MONAI's property check (``ConfigWorkflow.check_properties``) for a train or infer config: the required
    properties it lacks and the optional ones defined under a wrong ID."""
    workflow = ConfigWorkflow(config_file=config_files(bundle, config),
                              meta_file=os.path.join(bundle, "configs", "metadata.json"),
                              workflow_type="train" if config.startswith("train") else "infer", **overrides)
    workflow.initialize()
    missing = []
    for name, prop in workflow.properties.items():
        if prop.get("required", False):
            try:
                getattr(workflow, name)
            except (KeyError, AttributeError):
                missing.append(name)
        else:
            try:
                defined_right = workflow._check_optional_id(name=name, property=prop)
            except AttributeError:  # defined inline where MONAI expects a reference to the property's ID
                defined_right = False
            if not defined_right:
                missing.append(name)
    return missing


def check_properties(bundle: str, run: dict) -> list[str]:
    """Properties MONAI's check reports for the train and inference configs that the docs do not explain."""
    documented = set(re.findall(r"`([^`]+)`", docs_section(bundle, "MONAI workflow properties")))
    problems = []
    for config in [*train_configs(bundle), "inference.json"]:
        for name in missing_properties(bundle, config, tiny_overrides(bundle, run, config)):
            if name not in documented:
                problems.append(f"{config}: property '{name}' missing and not explained in the docs")
    return problems


def check_torchscript(bundle: str, run: dict) -> list[str]:
    """Export ``network_def`` with the tiny weights through ``monai.bundle.ckpt_export``. Where that fails, the docs
    section "MONAI workflow properties" must give the reason on a line starting with ``TorchScript:``; where it
    works, no such line may claim it does not."""
    from monai.bundle import ckpt_export

    documented = re.search(r"^TorchScript: \S", docs_section(bundle, "MONAI workflow properties"), re.M) is not None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            ckpt_export(net_id="network_def", filepath=os.path.join(tmp, "model.ts"),
                        ckpt_file=os.path.join(run["ckpt_dir"], "model.pt"),
                        meta_file=os.path.join(bundle, "configs", "metadata.json"),
                        config_file=config_files(bundle, "inference.json"), **tiny_overrides(bundle, run, "inference.json"))
        except Exception as err:  # noqa: BLE001 - not exportable is acceptable when documented
            return [] if documented else [f"ckpt_export fails ({_last_line(err)[:120]}) and the 'MONAI workflow properties' "
                                          "docs section has no 'TorchScript:' line giving the reason"]
    return ["ckpt_export works but the docs' 'TorchScript:' line says it does not"] if documented else []


STANDALONE = """
import json, os, runpy, sys
repo, bundle, mode = sys.argv[1:4]
inside = lambda p: os.path.abspath(p) == repo or os.path.abspath(p).startswith(repo + os.sep)  # noqa: E731
sys.path[:] = [bundle] + [p for p in sys.path if p and not inside(p)]
import medi2i
assert medi2i.__file__.startswith(bundle), medi2i.__file__
if mode == "serve":
    from medi2i.serving import bundle_infer
    pred = bundle_infer(bundle, sys.argv[4], sys.argv[5], overrides=json.load(open(sys.argv[6])),
                        overlays=[bundle + "/configs/demo.json"])
    print("served", tuple(pred.shape))
else:
    sys.argv = ["monai.bundle"] + sys.argv[4:]
    runpy.run_module("monai.bundle", run_name="__main__")
"""


def unpack_standalone(bundle: str, run: dict, workdir: str) -> str:
    """Export ``bundle``, unzip it under ``workdir`` and put the tiny run's weights in its ``models/``."""
    zip_path = export_bundle(bundle, os.path.join(workdir, "dist"))
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(os.path.join(workdir, "unpacked"))
    unpacked = os.path.join(workdir, "unpacked", os.path.basename(os.path.normpath(bundle)))
    os.makedirs(os.path.join(unpacked, "models"), exist_ok=True)
    for weights in glob.glob(os.path.join(run["ckpt_dir"], "*.pt")):
        shutil.copy2(weights, os.path.join(unpacked, "models", os.path.basename(weights)))
    return unpacked


def run_standalone(unpacked: str, *args: str) -> str:
    """Run the standalone script in ``unpacked`` with the repository removed from ``sys.path``; return stdout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", STANDALONE, REPO, unpacked, *args], cwd=unpacked, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"standalone run failed: {proc.stderr.strip().splitlines()[-3:]}"
    return proc.stdout


def check_standalone(bundle: str, run: dict, workdir: str) -> str:
    """The exported bundle runs its inference config outside the repository, and serves one image (MONAI Label)."""
    unpacked = unpack_standalone(bundle, run, workdir)
    overrides = {**tiny_overrides(bundle, run, "inference.json"), "bundle_root": unpacked, "ckpt_dir": unpacked + "/models"}
    overlay = os.path.join(workdir, "tiny_overrides.json")
    with open(overlay, "w") as f:
        json.dump(overrides, f)
    configs = [os.path.join(unpacked, "configs", n) for n in ("inference.json", "demo.json")] + [overlay]
    run_standalone(unpacked, "run", "run", "--config_file", repr(configs),
                   "--meta_file", os.path.join(unpacked, "configs", "metadata.json"))
    sample = sample_image(bundle, run)
    if sample is None:
        return "inference ran standalone"
    out = run_standalone(unpacked, "serve", sample, os.path.join(workdir, "served.nii.gz"), overlay)
    return f"inference ran standalone; {out.strip().splitlines()[-1]}"


def sample_image(bundle: str, run: dict) -> str | None:
    """The tiny recipe's ``sample_image`` (a glob under the tiny dataset_dir) for the MONAI Label contract."""
    pattern = load_recipe(bundle)[1].get("tiny", {}).get("sample_image")
    files = sorted(glob.glob(os.path.join(run["dataset_dir"], pattern))) if pattern else []
    return files[0] if files else None


# ------------------------------------------------------------------------------------------------- the report
def verify_bundle(bundle: str, workdir: str, standalone: bool = True) -> list[dict]:
    """All checks for one bundle; each row is ``{"bundle", "check", "ok", "detail"}``."""
    name = os.path.basename(os.path.normpath(bundle))
    rows = []

    def record(check, func, *args):
        try:
            result = func(*args)
            problems = result if isinstance(result, list) else []
            rows.append({"bundle": name, "check": check, "ok": not problems,
                         "detail": "; ".join(problems) if problems else (result if isinstance(result, str) else "")})
        except BaseException as err:  # noqa: BLE001 - a failing check is a row of the report
            rows.append({"bundle": name, "check": check, "ok": False, "detail": _last_line(err)})

    for check, func in STATIC_CHECKS.items():
        record(check, func, bundle)
    try:
        run = run_recipe(bundle, os.path.join(workdir, "tiny"), tiny=True)
        rows.append({"bundle": name, "check": "tiny run", "ok": True,
                     "detail": ", ".join(f"{k} {v:.1f}s" for k, v in run["seconds"].items())})
    except BaseException as err:  # noqa: BLE001
        rows.append({"bundle": name, "check": "tiny run", "ok": False, "detail": _last_line(err)})
        return rows
    for config in runnable_configs(bundle):
        record(f"instantiate {config}", instantiate_config, bundle, config, tiny_overrides(bundle, run, config))
    record("workflow properties", check_properties, bundle, run)
    record("TorchScript", check_torchscript, bundle, run)
    record("verify_net_in_out", check_net_in_out, bundle)
    if standalone:
        record("standalone + MONAI Label contract", check_standalone, bundle, run, os.path.join(workdir, "standalone"))
    return rows


def _last_line(err: BaseException) -> str:
    while err.__cause__ is not None:
        err = err.__cause__
    text = "".join(traceback.format_exception_only(type(err), err)).strip().splitlines()
    return text[-1][:300] if text else type(err).__name__
