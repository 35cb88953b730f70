"""Verify every bundle under bundles/ (or the ones given): files, metadata, packages, docs, sizes, paths, multi-GPU
overlays, a tiny run of the recipe, configs instantiate, MONAI workflow properties, TorchScript, and the standalone
export running outside the repository (with the MONAI Label contract).

    python tools/verify.py                      # all bundles
    python tools/verify.py bundles/brats_mri_tumor_growth_regression_guidance --standalone False

Exits with status 1 if any check fails.
"""

import glob
import os
import sys
import tempfile

import fire

from medi2i.verify import verify_bundle
from medi2i.workflows.tables import markdown_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(*bundles: str, workdir: str = None, standalone: bool = True):
    bundles = bundles or sorted(p for p in glob.glob(os.path.join(ROOT, "bundles", "*")) if os.path.isdir(p))
    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for bundle in bundles:
            rows += verify_bundle(bundle, os.path.join(tmp, os.path.basename(os.path.normpath(bundle))), standalone)
    print(markdown_table([{**r, "ok": "PASS" if r["ok"] else "FAIL"} for r in rows]))
    if not all(r["ok"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    fire.Fire(main)
