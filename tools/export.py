"""Export bundles as standalone zips (shared package vendored, exact versions, .sha256/.md5 beside each zip).

    python tools/export.py bundles/brats_mri_tumor_growth_regression_guidance --output_dir dist
    python tools/export.py --all --output_dir dist
    python tools/export.py --all --output_dir dist --weights_url https://example.org/medi2i/v1   # where you upload
        # the weights: the zips then carry large_files.json instead, the weights lie in dist/<bundle>_v<version>_weights/
"""

import glob
import os

import fire

from medi2i.errors import exit_on_input_error
from medi2i.export import export_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@exit_on_input_error
def main(*bundles: str, output_dir: str = "dist", all: bool = False, weights_url: str | None = None):  # noqa: A002
    if all:
        bundles = sorted(p for p in glob.glob(os.path.join(ROOT, "bundles", "*")) if os.path.isdir(p))
    for bundle in bundles:
        print(export_bundle(bundle, output_dir, weights_url))


if __name__ == "__main__":
    fire.Fire(main)
