"""Run a bundle end to end on synthetic phantoms (the README's first command).

    python tools/demo.py                       # tumour-growth bundle, committed demo weights (about 40 s)
    python tools/demo.py --bundle bundles/<name>   # another bundle's demo recipe
    python tools/demo.py --retrain             # train the demo networks first (about 2 h on one CPU thread)
    python tools/demo.py --retrain --save_weights   # ... and replace the committed demo weights with them
    python tools/demo.py --bundle bundles/<name> --real   # the real-data weights on held-out real cases of ../shared/data
    python tools/demo.py --bundle bundles/<name> --real --retrain --save_weights   # train them on the real training set
    python tools/demo.py --bundle bundles/<name> --variant short   # a named variant of the recipe (ALDM's short run)

Writes data, (models,) outputs/ (NIfTI + panel.png per case) and eval/ (metrics tables, plot) to --output_dir.
"""

import os
import time

import fire

from medi2i.errors import exit_on_input_error
from medi2i.recipes import DATA_ROOT, run_recipe, save_recipe_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@exit_on_input_error
def main(bundle: str = os.path.join(ROOT, "bundles", "brats_mri_tumor_growth_regression_guidance"),
         output_dir: str = "demo_output", retrain: bool = False, tiny: bool = False, save_weights: bool = False,
         real: bool = False, data_root: str = DATA_ROOT, variant: str | None = None):
    start = time.perf_counter()
    result = run_recipe(bundle, output_dir, tiny=tiny, retrain=retrain, real=real, data_root=data_root, variant=variant)
    total = time.perf_counter() - start
    if save_weights and retrain and not (tiny or variant):
        print(f"demo weights saved to {save_recipe_weights(bundle, result['ckpt_dir'], real=real)}")
    print("\nsteps (seconds): " + ", ".join(f"{k} {v:.1f}" for k, v in result["seconds"].items()) + f"; total {total:.1f}")
    print(f"weights: {result['ckpt_dir']}")
    print(f"outputs: {os.path.join(result['output_dir'], 'outputs')} (one folder per case with NIfTI files and panel.png)")
    print(f"metrics: {os.path.join(result['output_dir'], 'eval', 'metrics.md')}")


if __name__ == "__main__":
    fire.Fire(main)
