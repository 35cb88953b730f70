import os

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.abspath(os.path.join(ROOT, "..", "shared", "data"))
GROWTH = os.path.join(ROOT, "bundles", "brats_mri_tumor_growth_regression_guidance")


def shared(*parts: str) -> str:
    """Path under ../shared/data, or skip the test with the reason when that sample is absent."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"real sample data not available: {path} is absent (see ../shared/data/SOURCES.md)")
    return path


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_growth_run(tmp_path_factory):
    """The growth bundle's recipe at tiny size: phantoms -> train DDPM -> train regressor -> infer -> evaluate."""
    from medi2i.recipes import run_recipe

    return run_recipe(GROWTH, str(tmp_path_factory.mktemp("growth_tiny")), tiny=True)
