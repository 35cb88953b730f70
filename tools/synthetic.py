"""Write a synthetic BraTS-like phantom dataset (deterministic by seed), in the BraTS 2018 or 2023 layout.

    python tools/synthetic.py /tmp/phantoms --num_cases 32 --shape "[64,64,32]" --seed 0
"""

import fire

from medi2i.data import write_phantom_dataset


def main(output_dir: str, num_cases: int = 32, shape=(64, 64, 32), seed: int = 0, healthy_fraction: float = 0.25,
         naming: str = "brats2018", noise: float = 0.02):
    truths = write_phantom_dataset(output_dir, num_cases, tuple(shape), seed, healthy_fraction, naming, noise)
    print(f"wrote {len(truths)} phantom cases to {output_dir} (ground truth in phantoms.json)")


if __name__ == "__main__":
    fire.Fire(main)
