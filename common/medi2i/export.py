"""Standalone export: a bundle as a zip a user unpacks anywhere and runs with only the packages its metadata lists.

The shared package is vendored into the bundle (``<bundle>/medi2i/``; ``python -m monai.bundle run`` started in
the bundle folder and MONAI Label, which puts the bundle folder on ``sys.path``, both import it from there) and
also shipped as a wheel (``<bundle>/wheels/medi2i-<version>-py3-none-any.whl``, for ``pip install`` where the bundle
folder is not on ``sys.path``; ``medi2i`` is on no package index, so no metadata lists it as a requirement: the
model zoo's ``get_bundle_requirements`` turns every ``required_packages_version`` entry into ``name==version``).
``metadata.json`` gets the exact versions of this environment; the shipped weights (``models/demo/*.pt``, else the
real-data ``models/real/*.pt``) become
``models/*.pt`` where the bundle has no ``models/model.pt`` (the model zoo's preferred file); and
``<zip>.sha256``/``<zip>.md5`` are written for ``monai.bundle download``-style integrity checks.

With ``weights_url`` (where the publisher will host the weights) the zip carries no weights: every ``models/**/*.pt``
moves to ``<bundle>_v<version>_weights/`` beside the zip, to be uploaded under that URL, and the bundle gets the
model zoo's large-files list (``large_files.json``: path, url, sha256) from which ``python -m monai.bundle download_large_files`` fetches
and checks them.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from importlib import metadata as importlib_metadata

import medi2i

from .errors import require

#: run products in a bundle folder (folders, and compiled files): never exported, not size-checked
RUN_PRODUCTS = ("runs", "outputs", "eval", "data", "__pycache__", ".pytest_cache", "*.pyc")


def shipped_weights(bundle: str) -> str | None:
    """The committed weights folder the export places in ``models/``: ``models/demo`` (phantom demo weights), else
    ``models/real`` (real-data weights), when it holds a ``model.pt``."""
    for folder in ("models/demo", "models/real"):
        if os.path.isfile(os.path.join(bundle, folder, "model.pt")):
            return folder
    return None


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


def _install_requires() -> list[str]:
    """``install_requires`` of the repository's ``setup.cfg``, else of the installed distribution's metadata."""
    cfg = configparser.ConfigParser()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(medi2i.__file__))))
    if cfg.read(os.path.join(root, "setup.cfg")):
        lines = (ln.strip() for ln in cfg.get("options", "install_requires", fallback="").splitlines())
        return [ln for ln in lines if ln and not ln.startswith("#")]
    try:
        return list(importlib_metadata.requires("medi2i") or [])
    except importlib_metadata.PackageNotFoundError:
        return []


def build_wheel(output_dir: str) -> str:
    """Write ``medi2i-<version>-py3-none-any.whl`` (pure Python: the package's files, METADATA with
    ``install_requires`` as ``Requires-Dist``, WHEEL, RECORD) into ``output_dir``; return its path."""
    version = medi2i.__version__
    package_dir = os.path.dirname(os.path.abspath(medi2i.__file__))
    dist_info = f"medi2i-{version}.dist-info"
    files: list[tuple[str, bytes]] = []
    for root, dirs, names in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(n for n in names if not n.endswith(".pyc")):
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files.append(("medi2i/" + os.path.relpath(path, package_dir).replace(os.sep, "/"), f.read()))
    requires = "".join(f"Requires-Dist: {r}\n" for r in _install_requires())
    files.append((f"{dist_info}/METADATA", (f"Metadata-Version: 2.1\nName: medi2i\nVersion: {version}\n"
                                           f"Summary: Shared package of the medi2i MONAI bundles\nLicense: Apache-2.0\n"
                                           f"Requires-Python: >=3.9\n{requires}").encode()))
    files.append((f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: medi2i.export\nRoot-Is-Purelib: true\n"
                                        b"Tag: py3-none-any\n"))
    files.append((f"{dist_info}/top_level.txt", b"medi2i\n"))
    record = []
    for name, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, f"medi2i-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path + ".part", "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    os.replace(path + ".part", path)
    return path


def externalise_weights(staged: str, weights_dir: str, weights_url: str) -> list[dict]:
    """Move every ``models/**/*.pt`` of the bundle folder ``staged`` to the same relative path under ``weights_dir``
    and write ``<staged>/large_files.json`` listing them (url ``<weights_url>/<path>``, sha256); return the entries.
    JSON, which the model zoo and MONAI's ``download_large_files`` read like ``large_files.yml``, needs no PyYAML."""
    entries = []
    for root, _, names in sorted(os.walk(os.path.join(staged, "models"))):
        for name in sorted(n for n in names if n.endswith(".pt")):
            path = os.path.relpath(os.path.join(root, name), staged).replace(os.sep, "/")
            entries.append({"path": path, "url": f"{weights_url.rstrip('/')}/{path}",
                            "hash_val": file_hashes(os.path.join(staged, path))["sha256"], "hash_type": "sha256"})
            os.makedirs(os.path.dirname(os.path.join(weights_dir, path)), exist_ok=True)
            shutil.move(os.path.join(staged, path), os.path.join(weights_dir, path))
    require(entries, staged, "has no weights (models/**/*.pt) to list in large_files.json")
    with open(os.path.join(staged, "large_files.json"), "w") as f:
        json.dump({"large_files": entries}, f, indent=4)
        f.write("\n")
    return entries


def export_bundle(bundle_dir: str, output_dir: str, weights_url: str | None = None) -> str:
    """Write ``<output_dir>/<bundle>_v<version>.zip`` (+ ``.sha256``, ``.md5``); return the zip's path. With
    ``weights_url``, the weights go to ``<output_dir>/<bundle>_v<version>_weights/`` and ``large_files.json``."""
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
        build_wheel(os.path.join(staged, "wheels"))
        shipped = shipped_weights(staged)
        if shipped and not os.path.isfile(os.path.join(staged, "models", "model.pt")):
            for f in sorted(os.listdir(os.path.join(staged, shipped))):
                if f.endswith(".pt"):
                    shutil.copy2(os.path.join(staged, shipped, f), os.path.join(staged, "models", f))
        with open(os.path.join(staged, "configs", "metadata.json"), "w") as f:
            json.dump(meta, f, indent=4)
            f.write("\n")
        base = os.path.join(os.path.abspath(output_dir), f"{name}_v{meta['version']}")
        if weights_url:
            weights_dir = base + "_weights"
            require(not os.path.exists(weights_dir), weights_dir, "exists already (remove it to export again)")
            externalise_weights(staged, weights_dir + ".part", weights_url)
            os.replace(weights_dir + ".part", weights_dir)
        archive = shutil.make_archive(base + ".part", "zip", root_dir=tmp, base_dir=name)
        os.replace(archive, base + ".zip")
    zip_path = base + ".zip"
    for kind, digest in file_hashes(zip_path).items():
        with open(f"{zip_path}.{kind}", "w") as f:
            f.write(f"{digest}  {os.path.basename(zip_path)}\n")
    return zip_path
