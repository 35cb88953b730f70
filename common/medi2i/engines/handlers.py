"""Ignite handlers MONAI lacks: resume from the newest checkpoint of a run, and a tqdm progress bar."""

from __future__ import annotations

import glob
import os

import ignite.distributed as idist
from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader, CheckpointSaver, from_engine


def latest_checkpoint(directory: str, pattern: str = "checkpoint*.pt") -> str | None:
    """The most recently written file matching ``pattern`` in ``directory``, or None."""
    files = glob.glob(os.path.join(directory, pattern))
    return max(files, key=os.path.getmtime) if files else None


class ResumableCheckpoint:
    """Save ``save_dict`` plus the trainer's state in ``directory`` every ``save_interval`` epochs and when training
    ends or is interrupted (MONAI ``CheckpointSaver``), and on ``STARTED`` resume from the newest
    ``checkpoint*.pt`` there (MONAI ``CheckpointLoader``), so an interrupted run continues where it stopped.

    The trainer is added at ``attach`` time, which keeps bundle configs free of a circular reference. In a
    distributed run every rank resumes but only rank 0 writes checkpoints.
    """

    def __init__(self, directory: str, save_dict: dict, save_interval: int = 1, resume: bool = True, map_location=None):
        self.directory, self.save_dict, self.save_interval = directory, save_dict, save_interval
        self.resume, self.map_location = resume, map_location

    def attach(self, engine: Engine) -> None:
        objects = {**self.save_dict, "trainer": engine}
        if self.resume:
            engine.add_event_handler(Events.STARTED, self._resume, objects)
        if idist.get_rank() != 0:
            return
        CheckpointSaver(save_dir=self.directory, save_dict=objects, file_prefix="",
                        save_interval=self.save_interval, n_saved=1, save_final=True,
                        final_filename="checkpoint_final.pt").attach(engine)

    def _resume(self, engine: Engine, objects: dict) -> None:
        path = latest_checkpoint(self.directory)
        if path is None:
            engine.logger.info(f"no checkpoint in {self.directory}: training from scratch")
            return
        CheckpointLoader(load_path=path, load_dict=objects, map_location=self.map_location)(engine)
        engine.logger.info(f"resumed from {path} at epoch {engine.state.epoch}, iteration {engine.state.iteration}")


class ProgressBar:
    """Ignite's tqdm progress bar showing the loss, attachable from a bundle's handler list."""

    def __init__(self, persist: bool = False, loss_key: str = "loss"):
        self.persist, self.loss_key = persist, loss_key

    def attach(self, engine: Engine) -> None:
        from ignite.handlers import ProgressBar as IgniteProgressBar

        transform = from_engine([self.loss_key], first=True)
        IgniteProgressBar(persist=self.persist).attach(engine, output_transform=lambda out: {"loss": transform(out)})


def split_prediction(output, channels: int | None = None):
    """``(pred, label)`` of an engine output with the prediction cut to the label's channels (drops the
    learned-variance channels of a DDPM before comparing its noise prediction with the true noise)."""
    preds, labels = from_engine(["pred", "label"])(output)
    cut = lambda p, l: p[: (channels or l.shape[0])]  # noqa: E731
    return [cut(p, l) for p, l in zip(preds, labels)], labels
