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


def expect_input_error(capsys, bundle: str, config: str, overrides: dict, message: str) -> None:
    """Running ``config`` of ``bundle`` exits with status 2 and one ``error: ...`` line containing ``message``."""
    from medi2i.recipes import run_step

    with pytest.raises(SystemExit) as exit_info:
        run_step(bundle, config, overrides)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1], err[-1]
