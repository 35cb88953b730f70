"""Build a slice datalist from a BraTS dataset folder (BraTS 2018-2021, 2023, Decathlon Task01, or phantoms).

    python tools/datalist.py /data/BraTS2020/MICCAI_BraTS2020_TrainingData /data/brats_slices
    python tools/datalist.py /data/Task01_BrainTumour /data/brats_slices --download   # fetch the Decathlon task first

Writes <output_dir>/datalist.json (training/validation/test slices with relative tumour size, and the cases of
each section) and the slices as 4-channel NIfTI files under <output_dir>/slices/.
"""

import fire

from medi2i.data import build_slice_datalist
from medi2i.data.brats import decathlon_cases
from medi2i.errors import exit_on_input_error


@exit_on_input_error
def main(dataset_dir: str, output_dir: str, image_size: int = 256, val_fraction: float = 0.1, test_fraction: float = 0.1,
         seed: int = 0, min_brain_pixels: int = 1, slice_range=None, download: bool = False):
    if download:
        decathlon_cases(dataset_dir, download=True)
    path = build_slice_datalist(dataset_dir, output_dir, image_size, val_fraction, test_fraction, seed,
                                min_brain_pixels, slice_range)
    print(f"datalist written to {path}")


if __name__ == "__main__":
    fire.Fire(main)
