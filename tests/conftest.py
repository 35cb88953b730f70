import os

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.abspath(os.path.join(ROOT, "..", "shared", "data"))
GROWTH = os.path.join(ROOT, "bundles", "brats_mri_tumor_growth_regression_guidance")
#: every bundle of the collection; collection-wide tests are parametrised over these
BUNDLES = sorted(d for d in os.listdir(os.path.join(ROOT, "bundles")) if os.path.isdir(os.path.join(ROOT, "bundles", d)))


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
def tiny_run(tmp_path_factory):
    """``tiny_run(bundle_dir)``: the bundle's recipe at tiny size (data -> train -> infer -> evaluate), run once per
    session and shared by every test that asks for it."""
    from medi2i.recipes import run_recipe

    runs: dict[str, dict] = {}

    def get(bundle: str) -> dict:
        if bundle not in runs:
            runs[bundle] = run_recipe(bundle, str(tmp_path_factory.mktemp(os.path.basename(bundle) + "_tiny")), tiny=True)
        return runs[bundle]

    return get


@pytest.fixture(scope="session")
def tiny_growth_run(tiny_run):
    """The growth bundle's recipe at tiny size: phantoms -> train DDPM -> train regressor -> infer -> evaluate."""
    return tiny_run(GROWTH)


def expect_input_error(capsys, bundle: str, overrides: dict, message: str, config: str = "inference.json") -> None:
    """Running ``config`` of ``bundle`` with ``overrides`` exits with status 2 and one ``error: ...`` line containing
    ``message``."""
    from medi2i.recipes import run_step

    with pytest.raises(SystemExit) as exit_info:
        run_step(bundle, config, overrides)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1], err[-1]


def expect_cli_error(config_files: list[str], meta_file: str, tmp_path, bad_input: str, message: str) -> None:
    """``python -m monai.bundle run`` on ``bad_input`` exits with status 2, one ``error: <message>`` line, no
    traceback and no output folder."""
    import subprocess
    import sys

    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(config_files), "--meta_file", meta_file,
            "--bundle_root", str(tmp_path), "--inputs", bad_input, "--output_dir", str(tmp_path / "out")]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"error: {message}"
    assert "Traceback" not in proc.stderr and not os.path.exists(tmp_path / "out")
