"""Checks every bundle of the collection must pass: files, metadata, configs that parse and instantiate, and a
tiny end-to-end run of its recipe (train -> infer -> evaluate on phantoms)."""

from __future__ import annotations

import glob
import json
import os
import traceback

from monai.bundle import ConfigParser

from .recipes import load_recipe, run_recipe

REQUIRED_FILES = ("LICENSE", "configs/metadata.json", "configs/inference.json", "configs/logging.conf", "docs/README.md",
                  "configs/demo.json")
METADATA_KEYS = ("version", "changelog", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
                 "optional_packages_version", "task", "description", "authors", "copyright", "intended_use",
                 "references", "data_source", "network_data_format")
#: configs that are overlays merged into others, not runnable on their own
OVERLAY_PATTERNS = ("demo.json", "multi_gpu*.json")
NOT_COMPONENTS = ("imports", "run", "initialize", "finalize", "demo")


def overlays(bundle: str) -> set[str]:
    return {os.path.basename(p) for pat in OVERLAY_PATTERNS for p in glob.glob(os.path.join(bundle, "configs", pat))}


def runnable_configs(bundle: str) -> list[str]:
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(bundle, "configs", "*.json")))
    return [n for n in names if n != "metadata.json" and n not in overlays(bundle)]


def check_files(bundle: str) -> list[str]:
    return [f"missing {f}" for f in REQUIRED_FILES if not os.path.isfile(os.path.join(bundle, f))]


def check_metadata(bundle: str) -> list[str]:
    path = os.path.join(bundle, "configs", "metadata.json")
    if not os.path.isfile(path):
        return ["no metadata.json"]
    with open(path) as f:
        meta = json.load(f)
    problems = [f"metadata lacks '{k}'" for k in METADATA_KEYS if k not in meta]
    if "version" in meta and meta["version"] not in meta.get("changelog", {}):
        problems.append(f"version {meta['version']} is not a key of the changelog")
    for name, fmt in ((k, v) for k, v in meta.items() if k.endswith("data_format")):
        if not (isinstance(fmt, dict) and fmt.get("inputs") and fmt.get("outputs")):
            problems.append(f"{name} needs non-empty inputs and outputs")
    return problems


def instantiate_config(bundle: str, config: str, overrides: dict) -> None:
    """Parse ``config`` (+ the demo overlay) and instantiate every top-level component and expression."""
    parser = ConfigParser()
    parser.read_config([os.path.join(bundle, "configs", config), os.path.join(bundle, "configs", "demo.json")])
    parser.update(overrides)
    parser.parse()
    for key in parser.get():
        if key not in NOT_COMPONENTS:
            parser.get_parsed_content(key)


def verify_bundle(bundle: str, workdir: str) -> list[dict]:
    """All checks for one bundle; each row is ``{"bundle", "check", "ok", "detail"}``."""
    name = os.path.basename(os.path.normpath(bundle))
    rows = [{"bundle": name, "check": "files", "ok": not (p := check_files(bundle)), "detail": "; ".join(p)},
            {"bundle": name, "check": "metadata", "ok": not (p := check_metadata(bundle)), "detail": "; ".join(p)}]
    try:
        load_recipe(bundle)
        result = run_recipe(bundle, workdir, tiny=True)
        rows.append({"bundle": name, "check": "tiny run", "ok": True,
                     "detail": ", ".join(f"{k} {v:.1f}s" for k, v in result["seconds"].items())})
    except BaseException as err:  # noqa: BLE001 - a failing bundle is a row of the report
        rows.append({"bundle": name, "check": "tiny run", "ok": False, "detail": _last_line(err)})
        return rows
    _, recipe = load_recipe(bundle)
    overrides = {**recipe.get("tiny", {}).get("overrides", {}), "bundle_root": result["output_dir"],
                 "dataset_dir": result["dataset_dir"], "ckpt_dir": result["ckpt_dir"]}
    for config in runnable_configs(bundle):
        try:
            instantiate_config(bundle, config, overrides)
            rows.append({"bundle": name, "check": f"instantiate {config}", "ok": True, "detail": ""})
        except Exception as err:  # noqa: BLE001
            rows.append({"bundle": name, "check": f"instantiate {config}", "ok": False, "detail": _last_line(err)})
    return rows


def _last_line(err: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(err), err)).strip().splitlines()
    cause = err.__cause__
    while cause is not None:
        text = "".join(traceback.format_exception_only(type(cause), cause)).strip().splitlines()
        cause = cause.__cause__
    return text[-1][:300] if text else type(err).__name__
