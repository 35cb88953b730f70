"""Benchmark the ALDM bundle (seconds per step of stages 1-3, seconds per translated volume, peak memory).

    python tools/benchmark_ldm3d.py                                  # demo size (configs/demo.json), CPU
    python tools/benchmark_ldm3d.py --size paper --device cuda --amp True --overrides "{'gradient_checkpointing': True}"
"""

import os

import fire

from medi2i.benchmark_ldm3d import benchmark_aldm
from medi2i.workflows.tables import markdown_table, write_tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLE = os.path.join(ROOT, "bundles", "brats_mri_multimodal_translation_ldm3d")


def main(bundle: str = BUNDLE, size: str = "demo", device: str = "cpu", amp: bool = False, repeats: int = 1,
         num_inference_steps: int = None, overrides: dict = None, output_dir: str = None):
    rows = benchmark_aldm(bundle, overlays=("demo.json",) if size == "demo" else (), overrides=overrides, device=device, amp=amp,
                          repeats=repeats, num_inference_steps=num_inference_steps, on_row=lambda row: print(row, flush=True))
    print(markdown_table(rows))
    if output_dir:
        write_tables(rows, output_dir, f"benchmark_{size}_{device.split(':')[0]}", f"ALDM benchmark ({size} size, {device})")


if __name__ == "__main__":
    fire.Fire(main)
