"""Benchmark a bundle's guided translation (seconds per image, network evaluations, peak memory).

    python tools/benchmark.py bundles/brats_mri_tumor_growth_regression_guidance --strides "[1,10]" --batch_sizes "[1,6]"
    python tools/benchmark.py bundles/brats_mri_tumor_growth_regression_guidance --size paper --device cuda --amp "[False,True]"
    python tools/benchmark.py bundles/brats_mri_tumor_growth_regression_guidance --variants "[[1,1,False],[10,6,True]]"

    python tools/benchmark.py bundles/brats_mri_tumor_growth_regression_guidance --versus_monai --weights models/demo \
        --flags "[{},{'channels_last':True},{'use_flash_attention':True}]"   # project vs plain MONAI loop, ratio
    python tools/benchmark.py bundles/brats_mri_tumor_growth_regression_guidance --versus_monai --size paper \
        --extrapolate_steps 1                                              # paper size, 1 step each way, scaled to L

    python tools/benchmark.py bundles/prostate_mri_super_resolution_cddpm --sampling --checkpoint demo/models/model.pt \
        --overrides "{'dataset_dir': 'demo/data/slices'}"   # Med-cDiff: 2000-step ancestral vs DDIM 50/100/250

``--size demo`` uses the bundle's configs/demo.json sizes; ``--size paper`` the configs' own (paper) sizes.
``--weights`` is a folder inside the bundle (or any path) with ``model.pt`` and ``regressor.pt``; without it the
networks keep random weights. ``--overrides`` are config overrides (e.g. ``"{'stride': 1}"``).
"""

import os

import fire

import torch

from medi2i.benchmark import SAMPLING_VARIANTS, benchmark_against_monai, benchmark_conditional_sampling, benchmark_translation
from medi2i.workflows.tables import markdown_table, write_tables


def main(bundle: str, size: str = "demo", device: str = "cpu", strides=(10,), batch_sizes=(1,), amp=(False,),
         noise_level: int = None, repeats: int = 1, variants=None, output_dir: str = None, sampling: bool = False,
         checkpoint: str = None, overrides: dict = None, num_images: int = 4, versus_monai: bool = False,
         weights: str = None, flags=({},), cases: int = 1, extrapolate_steps: int = None, threads: int = None):
    """Every combination of ``strides`` x ``batch_sizes`` x ``amp``, or the ``variants`` listed as
    ``[[stride, batch, amp], ...]``; rows are printed as they are measured. ``--sampling``: conditional (Med-cDiff)
    bundles, seconds per image and PSNR for ``variants`` ``[[method, steps(, eta)], ...]`` (default ancestral 2000,
    DDIM 50/100/250 with eta 0 and 1) with the weights in ``--checkpoint`` on the first ``--num_images`` test slices.
    ``--versus_monai``: the bundle's guided translation of ``--cases`` images towards all configured targets against
    a plain MONAI-tutorial loop, one row per entry of ``--flags`` (config overrides); ``--threads`` CPU threads."""
    if threads:
        torch.set_num_threads(int(threads))
    if weights and not os.path.isabs(weights) and not os.path.exists(weights):
        weights = os.path.join(bundle, weights)
    if versus_monai:
        rows = benchmark_against_monai(bundle, ("demo.json",) if size == "demo" else (), overrides, device, weights, cases,
                                       repeats, flags, extrapolate_steps, on_row=lambda row: print(row, flush=True))
    elif sampling:
        rows = benchmark_conditional_sampling(bundle, checkpoint, ("demo.json",) if size == "demo" else (), overrides,
                                              device, variants or SAMPLING_VARIANTS, num_images,
                                              on_row=lambda row: print(row, flush=True))
    else:
        rows = benchmark_translation(bundle, overlays=("demo.json",) if size == "demo" else (), overrides=overrides, device=device,
                                     strides=strides, batch_sizes=batch_sizes, amp=amp, noise_level=noise_level,
                                     repeats=repeats, variants=variants, on_row=lambda row: print(row, flush=True))
    print(markdown_table(rows))
    if output_dir:
        write_tables(rows, output_dir, f"benchmark_{size}_{device.split(':')[0]}", f"Benchmark ({size} size, {device})")
        print(f"written to {os.path.abspath(output_dir)}")
    return None


if __name__ == "__main__":
    fire.Fire(main)
