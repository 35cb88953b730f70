"""Training faults: crash-safe checkpoints, resuming after a kill or a corrupt file, and one-line errors for bad
training settings. Every run is the growth bundle's DDPM at the demo's tiny sizes (under a second per epoch)."""

import glob
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import BUNDLES, GROWTH, ROOT, expect_input_error
from ignite.engine import Engine, Events
from monai.bundle import ConfigParser

from medi2i.engines import AtomicCheckpointSaver, RandomState, ResumableCheckpoint
from medi2i.recipes import GENERATORS, load_recipe, run_step

CONFIG = "train_diffusion.json"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Tiny phantom slices and the overrides of the growth DDPM's tiny training (1 epoch of 2 iterations)."""
    _, recipe = load_recipe(GROWTH)
    tiny = recipe["tiny"]
    data = {**recipe["data"], **tiny["data"]}
    dataset_dir = GENERATORS[data.pop("generator")](str(tmp_path_factory.mktemp("growth_data")), **data)
    return {**tiny["overrides"], **tiny["steps"][CONFIG], "dataset_dir": dataset_dir}


def _train(tiny_data, root, **overrides) -> str:
    """Train in ``root``; returns the trainer's and evaluator's log (ignite's and MONAI's StatsHandler loggers)."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    loggers = [logging.getLogger(name) for name in ("ignite", "monai.handlers.StatsHandler")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        run_step(GROWTH, CONFIG, {**tiny_data, "bundle_root": str(root), "ckpt_dir": str(root / "models"), **overrides})
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    return "\n".join(records)


def _checkpoints(root) -> list[str]:
    return sorted(os.path.basename(f) for f in glob.glob(str(root / "runs" / "diffusion" / "checkpoint*.pt")))


def _trainer_state(root, name) -> dict:
    return torch.load(root / "runs" / "diffusion" / name, weights_only=False)


# ------------------------------------------------------------------------------------------- checkpoints


def test_old_checkpoints_do_not_pile_up(tiny_data, tmp_path):
    for epochs in (1, 2, 3):
        _train(tiny_data, tmp_path, max_epochs=epochs)
    assert _checkpoints(tmp_path) == ["checkpoint_iteration=4.pt", "checkpoint_iteration=6.pt"]  # n_saved=2
    assert not glob.glob(str(tmp_path / "runs" / "diffusion" / "tmp*")) and os.listdir(tmp_path / "models") == ["model.pt"]


def test_resume_skips_a_truncated_newest_checkpoint(tiny_data, tmp_path):
    _train(tiny_data, tmp_path, max_epochs=2)
    newest = tmp_path / "runs" / "diffusion" / "checkpoint_iteration=4.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # what a kill mid-write used to leave
    log = _train(tiny_data, tmp_path, max_epochs=3)
    skipped = [ln for ln in log.splitlines() if "skipping unreadable checkpoint" in ln]
    assert len(skipped) == 1 and str(newest) in skipped[0] and "kept as" in skipped[0]
    assert f"resumed from {tmp_path / 'runs' / 'diffusion' / 'checkpoint_iteration=2.pt'} at epoch 1, iteration 2" in log
    assert "Traceback" not in log and os.path.isfile(str(newest) + ".corrupt")
    assert _trainer_state(tmp_path, "checkpoint_iteration=6.pt")["trainer"]["iteration"] == 6


def test_all_checkpoints_unreadable_trains_from_scratch_with_a_warning(tiny_data, tmp_path):
    _train(tiny_data, tmp_path, max_epochs=1)
    (tmp_path / "runs" / "diffusion" / "checkpoint_iteration=2.pt").write_bytes(b"not a checkpoint")
    log = _train(tiny_data, tmp_path, max_epochs=1)
    assert "no readable checkpoint" in log and "TRAINING FROM SCRATCH" in log


def test_resume_keeps_the_best_model_and_its_score(tiny_data, tmp_path):
    _train(tiny_data, tmp_path, max_epochs=1)
    best = (tmp_path / "models" / "model.pt").read_bytes()
    log = _train(tiny_data, tmp_path, max_epochs=2, learning_rate=1.0)  # a wild step: epoch 2 validates worse
    scores = [float(ln.rsplit(":", 1)[1]) for ln in log.splitlines() if "Metrics -- val_noise_mse" in ln]
    state = _trainer_state(tmp_path, "checkpoint_iteration=4.pt")["best_model"]
    assert len(scores) == 1 and scores[0] > state["best_metric"]  # the premise: epoch 2 is worse than epoch 1
    assert (tmp_path / "models" / "model.pt").read_bytes() == best
    assert state["best_metric_epoch"] == 1


def test_resumed_run_matches_an_uninterrupted_one(tiny_data, tmp_path):
    """Network weights after 1 epoch + resume to 2 epochs equal those of 2 epochs in one go: trainer, optimiser
    and random generators (noise, timesteps, shuffling) all continue. Epochs span the data (6 batches), so each
    starts a new shuffle."""
    _train(tiny_data, tmp_path / "straight", max_epochs=2, epoch_length=6)
    _train(tiny_data, tmp_path / "resumed", max_epochs=1, epoch_length=6)
    _train(tiny_data, tmp_path / "resumed", max_epochs=2, epoch_length=6)
    a, b = (_trainer_state(tmp_path / r, "checkpoint_iteration=12.pt")["network"] for r in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_of_an_older_release_still_resumes(tiny_data, tmp_path):
    _train(tiny_data, tmp_path, max_epochs=1)
    run = tmp_path / "runs" / "diffusion"
    state = _trainer_state(tmp_path, "checkpoint_iteration=2.pt")
    torch.save({k: state[k] for k in ("network", "optimizer", "trainer")}, run / "checkpoint_final.pt")
    os.remove(run / "checkpoint_iteration=2.pt")
    log = _train(tiny_data, tmp_path, max_epochs=2)
    assert "at epoch 1, iteration 2 (it holds no best_model, random_state: those start afresh)" in log
    assert _checkpoints(tmp_path) == ["checkpoint_final.pt", "checkpoint_iteration=4.pt"]


def test_best_model_write_is_atomic(tmp_path, monkeypatch):
    """A save of ``model.pt`` that dies half-way (kill, full disk) leaves the previous ``model.pt`` whole."""
    net, engine = torch.nn.Linear(2, 1), Engine(lambda engine, batch: None)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(score=e.state.epoch))
    AtomicCheckpointSaver(str(tmp_path), {"model": net}, save_key_metric=True, key_metric_name="score",
                          key_metric_filename="model.pt").attach(engine)
    save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        if engine.state.epoch == 2:
            with open(f, "wb") if isinstance(f, (str, os.PathLike)) else f as out:  # a path: MONAI's plain save
                out.write(b"half a checkpoint")
            raise OSError("No space left on device")
        save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError):
        engine.run(range(1), max_epochs=2)
    assert os.listdir(tmp_path) == ["model.pt"]
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], net.weight)


def test_random_state_round_trip():
    state = RandomState().state_dict()
    drawn = torch.rand(3), np.random.rand(3), random.random()
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    RandomState().load_state_dict(state)
    again = torch.rand(3), np.random.rand(3), random.random()
    assert torch.equal(drawn[0], again[0]) and np.array_equal(drawn[1], again[1]) and drawn[2] == again[2]


def _toy_run(tmp_path, fail_at: int, in_step: bool = True, poison: bool = False) -> list[str]:
    """Files left by a toy training of ``nn.Linear`` (2 steps an epoch) that raises KeyboardInterrupt in step
    ``fail_at`` (or just after it, ``in_step=False``), after setting NaN weights if ``poison``."""
    net = torch.nn.Linear(2, 1)

    def fail(engine):
        if engine.state.iteration == fail_at:
            if poison:
                net.weight.data.fill_(float("nan"))
            raise KeyboardInterrupt

    engine = Engine(lambda engine, batch: fail(engine) if in_step else None)
    ResumableCheckpoint(str(tmp_path), {"network": net}).attach(engine)
    if not in_step:
        engine.add_event_handler(Events.ITERATION_COMPLETED, fail)
    with pytest.raises(KeyboardInterrupt):
        engine.run(range(2), max_epochs=5)
    return sorted(os.listdir(tmp_path))


def test_interrupted_training_saves_progress_but_never_a_broken_state(tmp_path):
    assert _toy_run(tmp_path / "a", fail_at=3, in_step=False) == ["checkpoint_iteration=2.pt", "checkpoint_iteration=3.pt"]
    assert _toy_run(tmp_path / "b", fail_at=3) == ["checkpoint_iteration=2.pt"]  # inside step 3: may be half-updated
    assert _toy_run(tmp_path / "c", fail_at=3, in_step=False, poison=True) == ["checkpoint_iteration=2.pt"]  # NaN
    before = (tmp_path / "b" / "checkpoint_iteration=2.pt").read_bytes()
    assert _toy_run(tmp_path / "b", fail_at=3) == ["checkpoint_iteration=2.pt"]  # resumed at 2, dies at once
    assert (tmp_path / "b" / "checkpoint_iteration=2.pt").read_bytes() == before


def test_checkpoint_of_another_network_is_a_one_line_error(tiny_data, tmp_path, capsys):
    _train(tiny_data, tmp_path, max_epochs=1)
    before = (tmp_path / "runs" / "diffusion" / "checkpoint_iteration=2.pt").read_bytes()
    overrides = {**tiny_data, "bundle_root": str(tmp_path), "ckpt_dir": str(tmp_path / "models"),
                 "ddpm_channels": [8, 16, 32], "max_epochs": 2}
    expect_input_error(capsys, GROWTH, overrides, "does not fit this training configuration", config=CONFIG)
    assert _checkpoints(tmp_path) == ["checkpoint_iteration=2.pt"]  # no crash-handler checkpoint of iteration 0
    assert (tmp_path / "runs" / "diffusion" / "checkpoint_iteration=2.pt").read_bytes() == before


# The subprocess stalls the first save of a trainer checkpoint at ``iteration`` halfway through writing it, touches
# ``marker`` and sleeps, so that the test's SIGKILL lands mid-write.
STALLING_RUN = """
import io, os, sys, time, runpy, torch
stall_at, marker = int(sys.argv[1]), sys.argv[2]
save = torch.save
def stalling_save(obj, f, *args, **kwargs):
    if isinstance(obj, dict) and obj.get("trainer", {}).get("iteration") == stall_at:
        buffer = io.BytesIO()
        save(obj, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        f.flush()
        open(marker, "w").close()
        time.sleep(600)
    return save(obj, f, *args, **kwargs)
torch.save = stalling_save
sys.argv = ["monai.bundle"] + sys.argv[3:]
runpy.run_module("monai.bundle", run_name="__main__")
"""


def test_sigkill_during_a_checkpoint_save_resumes_from_the_last_good_one(tiny_data, tmp_path):
    _train(tiny_data, tmp_path, max_epochs=1)
    configs = os.path.join(GROWTH, "configs")
    args = ["run", "--config_file", str([os.path.join(configs, CONFIG), os.path.join(configs, "demo.json")]),
            "--meta_file", os.path.join(configs, "metadata.json")]
    for key, value in {**tiny_data, "bundle_root": str(tmp_path), "ckpt_dir": str(tmp_path / "models"),
                       "max_epochs": 3}.items():
        args += [f"--{key}", value if isinstance(value, str) else repr(value)]
    marker = tmp_path / "stalled"
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "common")}
    proc = subprocess.Popen([sys.executable, "-c", STALLING_RUN, "4", str(marker), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "no stall within 240 s"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _checkpoints(tmp_path) == ["checkpoint_iteration=2.pt"]  # the half-written file is not a checkpoint
    torch.load(tmp_path / "models" / "model.pt", weights_only=True)  # whole
    log = _train(tiny_data, tmp_path, max_epochs=3)
    assert f"resumed from {tmp_path / 'runs' / 'diffusion' / 'checkpoint_iteration=2.pt'} at epoch 1, iteration 2" in log
    assert "removed 1 partial file(s) of an interrupted save" in log
    state = _trainer_state(tmp_path, "checkpoint_iteration=6.pt")
    assert state["trainer"]["iteration"] == 6 and state["best_model"]["best_metric_epoch"] >= 1
    assert _checkpoints(tmp_path) == ["checkpoint_iteration=4.pt", "checkpoint_iteration=6.pt"]


# ------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("overrides, message", [
    ({"dataset_dir": "/nonexistent/slices"}, "/nonexistent/slices/datalist.json: datalist not found"),
    ({"max_epochs": 0}, "max_epochs: must be a whole number >= 1, got 0"),
    ({"image_size": 15}, "image_size: must be a positive multiple of 4 (the networks downsample it by 4), got 15"),
    ({"batch_size": 0}, "batch_size: must be a whole number >= 1, got 0"),
    ({"learning_rate": 0.0}, "learning_rate: must be a finite number > 0, got 0.0"),
    ({"val_interval": 0}, "val_interval: must be a whole number >= 1, got 0"),
    ({"log_interval": 0}, "log_interval: must be a whole number >= 1, got 0"),
])
def test_bad_training_setting_is_a_one_line_error(tiny_data, tmp_path, capsys, overrides, message):
    expect_input_error(capsys, GROWTH, {**tiny_data, "bundle_root": str(tmp_path), **overrides}, message, config=CONFIG)
    assert not os.path.exists(tmp_path / "runs")


def _train_configs():
    for bundle in BUNDLES:
        for path in sorted(glob.glob(os.path.join(ROOT, "bundles", bundle, "configs", "train*.json"))):
            yield bundle, os.path.basename(path)


@pytest.mark.parametrize("bundle, config", list(_train_configs()))
def test_every_train_config_checks_its_settings_and_keeps_its_best_score(bundle, config, tmp_path, capsys):
    bundle_dir = os.path.join(ROOT, "bundles", bundle)
    size = "roi_size" if "ldm3d" in bundle else "image_size"
    for overrides, message in (({"max_epochs": 0}, "max_epochs: "), ({size: 15}, f"{size}: must be a positive multiple"),
                               ({**load_recipe(bundle_dir)[1]["tiny"].get("overrides", {}), "dataset_dir": str(tmp_path)
                                 + "/absent"}, "not found")):  # tiny sizes pass; the data is what is missing
        expect_input_error(capsys, bundle_dir, {"bundle_root": str(tmp_path), **overrides}, message, config=config)
    parser = ConfigParser()
    parser.read_config(os.path.join(bundle_dir, "configs", config))
    checkpoint = next(h for h in parser.get("train#handlers") if h["_target_"].endswith("ResumableCheckpoint"))
    assert parser.get(checkpoint["save_dict"]["best_model"][1:])["_target_"] == "medi2i.engines.AtomicCheckpointSaver"
    overlay = os.path.join(bundle_dir, "configs", "multi_gpu_" + config)
    if os.path.isfile(overlay):
        assert "@check_settings" in json.load(open(overlay))["initialize"]


def test_bad_training_setting_on_the_command_line_exits_2_without_traceback(tmp_path):
    configs = os.path.join(GROWTH, "configs")
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", os.path.join(configs, CONFIG),
                           "--bundle_root", str(tmp_path), "--image_size", "15"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "common")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: image_size: must be a positive multiple of 32")
