"""Run a bundle end to end on synthetic phantoms (the README's first command).

    python tools/demo.py                       # tumour-growth bundle, committed demo weights
    python tools/demo.py --retrain             # train the demo networks first (about 50 min on 2 CPU cores)

Writes data, (models,) outputs/ (NIfTI + panel.png per case) and eval/ (metrics tables, plot) to --output_dir.
"""

import os
import time

import fire

from medi2i.errors import exit_on_input_error
from medi2i.recipes import run_recipe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@exit_on_input_error
def main(bundle: str = os.path.join(ROOT, "bundles", "brats_mri_tumor_growth_regression_guidance"),
         output_dir: str = "demo_output", retrain: bool = False, tiny: bool = False):
    start = time.perf_counter()
    result = run_recipe(bundle, output_dir, tiny=tiny, retrain=retrain)
    total = time.perf_counter() - start
    print("\nsteps (seconds): " + ", ".join(f"{k} {v:.1f}" for k, v in result["seconds"].items()) + f"; total {total:.1f}")
    print(f"weights: {result['ckpt_dir']}")
    print(f"outputs: {os.path.join(result['output_dir'], 'outputs')} (one folder per case with NIfTI files and panel.png)")
    print(f"metrics: {os.path.join(result['output_dir'], 'eval', 'metrics.md')}")


if __name__ == "__main__":
    fire.Fire(main)
