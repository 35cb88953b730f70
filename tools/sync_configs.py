"""Write the tumour-inpainting bundle's DDPM description from the tumour-growth bundle's (one DDPM for all
guidances): its generated configs/train_diffusion.json and the DDPM keys of its inference configs and demo.json.

    python tools/sync_configs.py            # write (prints what changed)
    python tools/sync_configs.py --check    # exit 1 if the bundles differ
"""

import os
import sys

import fire

from medi2i.configsync import sync_diffusion

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "bundles", "brats_mri_tumor_growth_regression_guidance")
TARGET = os.path.join(ROOT, "bundles", "brats_mri_tumor_inpainting_segmentation_guidance")
INFERENCE_CONFIGS = ("inference.json", "inference_classifier.json")


def main(check: bool = False, source: str = SOURCE, target: str = TARGET):
    changes = sync_diffusion(source, target, INFERENCE_CONFIGS, write=not check)
    print("\n".join(changes) if changes else "in sync")
    if check and changes:
        sys.exit(1)


if __name__ == "__main__":
    fire.Fire(main)
