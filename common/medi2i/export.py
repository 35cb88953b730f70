"""Standalone export: a bundle as a zip a user unpacks anywhere and runs with only the packages its metadata lists.

The shared package is vendored into the bundle (``<bundle>/medi2i/``; ``python -m monai.bundle run`` started in
the bundle folder and MONAI Label, which puts the bundle folder on ``sys.path``, both import it from there),
``metadata.json`` gets the exact versions of this environment, and ``<zip>.sha256``/``<zip>.md5`` are written
for ``monai.bundle download``-style integrity checks (``hash_val``/``hash_type``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata as importlib_metadata

import medi2i

from .errors import require

#: run products in a bundle folder (folders, and compiled files): never exported, not size-checked
RUN_PRODUCTS = ("runs", "outputs", "eval", "data", "__pycache__", ".pytest_cache", "*.pyc")


def _version(package: str) -> str | None:
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return None


def pinned_metadata(meta: dict) -> dict:
    """``meta`` with this environment's exact versions; medi2i moves from the requirements to ``vendored_packages``."""
    import monai
    import numpy
    import torch

    meta = dict(meta)
    meta.update(monai_version=monai.__version__, pytorch_version=torch.__version__.split("+")[0],
                numpy_version=numpy.__version__)
    required = {k: v for k, v in meta.get("required_packages_version", {}).items() if k != "medi2i"}
    meta["required_packages_version"] = {k: _version(k) or v for k, v in required.items()}
    meta["vendored_packages"] = {"medi2i": medi2i.__version__}
    return meta


def file_hashes(path: str) -> dict[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def export_bundle(bundle_dir: str, output_dir: str) -> str:
    """Write ``<output_dir>/<bundle>_v<version>.zip`` (+ ``.sha256``, ``.md5``); return the zip's path."""
    bundle_dir = os.path.abspath(bundle_dir)
    name = os.path.basename(os.path.normpath(bundle_dir))
    meta_path = os.path.join(bundle_dir, "configs", "metadata.json")
    require(os.path.isfile(meta_path), bundle_dir, "not a bundle (no configs/metadata.json)")
    with open(meta_path) as f:
        meta = pinned_metadata(json.load(f))
    os.makedirs(output_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        staged = os.path.join(tmp, name)
        shutil.copytree(bundle_dir, staged, ignore=shutil.ignore_patterns(*RUN_PRODUCTS))
        shutil.copytree(os.path.dirname(os.path.abspath(medi2i.__file__)), os.path.join(staged, "medi2i"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        with open(os.path.join(staged, "configs", "metadata.json"), "w") as f:
            json.dump(meta, f, indent=4)
        base = os.path.join(os.path.abspath(output_dir), f"{name}_v{meta['version']}")
        archive = shutil.make_archive(base + ".part", "zip", root_dir=tmp, base_dir=name)
        os.replace(archive, base + ".zip")
    zip_path = base + ".zip"
    for kind, digest in file_hashes(zip_path).items():
        with open(f"{zip_path}.{kind}", "w") as f:
            f.write(f"{digest}  {os.path.basename(zip_path)}\n")
    return zip_path
