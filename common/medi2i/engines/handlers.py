"""Ignite handlers MONAI lacks: crash-safe checkpoints that a restarted run resumes from, and a tqdm progress bar."""

from __future__ import annotations

import glob
import os
import random
import re

import ignite.distributed as idist
import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver
from monai.handlers import CheckpointSaver, from_engine

from ..errors import InputError, exit_on_input_error, require

#: files ResumableCheckpoint reads; ``checkpoint_iteration=<N>.pt`` are its own, other names (older releases) rank last
CHECKPOINT_PATTERN = "checkpoint*.pt"
#: names of the temporary files an atomic save writes (``tempfile``'s) and a killed one leaves behind
PARTIAL = re.compile(r"^tmp[a-z0-9_]{8}$")


def checkpoint_iteration(path: str) -> int:
    """The trainer iteration in a ``checkpoint_iteration=<N>.pt`` name, -1 for any other name."""
    match = re.search(r"iteration=(\d+)\.pt$", os.path.basename(path))
    return int(match.group(1)) if match else -1


def checkpoints_newest_first(directory: str, pattern: str = CHECKPOINT_PATTERN) -> list[str]:
    """Files matching ``pattern`` in ``directory``, highest iteration first (then most recently written)."""
    files = glob.glob(os.path.join(directory, pattern))
    return sorted(files, key=lambda f: (checkpoint_iteration(f), os.path.getmtime(f)), reverse=True)


def latest_checkpoint(directory: str, pattern: str = CHECKPOINT_PATTERN) -> str | None:
    """The newest file matching ``pattern`` in ``directory`` (see :func:`checkpoints_newest_first`), or None."""
    files = checkpoints_newest_first(directory, pattern)
    return files[0] if files else None


class AtomicDiskSaver(DiskSaver):
    """Ignite ``DiskSaver`` that writes a temporary file and renames it (``atomic=True``), optionally always under
    one ``filename``, and deletes files it is told to remove only after the next save succeeded: a run killed at
    any moment leaves every earlier checkpoint whole."""

    def __init__(self, dirname: str, filename: str | None = None):
        super().__init__(dirname, atomic=True, require_empty=False)
        self.filename = filename
        self._pending: list[str] = []

    def __call__(self, checkpoint, filename: str, metadata=None) -> None:
        written = self.filename or filename
        super().__call__(checkpoint, written, metadata)
        for old in self._pending:
            if old != written and os.path.exists(os.path.join(self.dirname, old)):
                super().remove(old)
        self._pending = []

    def remove(self, filename: str) -> None:
        self._pending.append(self.filename or filename)


class RandomState:
    """The torch (CPU and CUDA), numpy and python ``random`` generator states, as an object with ``state_dict`` and
    ``load_state_dict`` that a checkpoint can hold, so a resumed run draws the numbers the uninterrupted one would."""

    def state_dict(self) -> dict:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": np.random.get_state(), "random": random.getstate()}

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"].cpu())
        if torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
        np.random.set_state(state["numpy"])
        random.setstate(state["random"])


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI ``CheckpointSaver`` writing through :class:`AtomicDiskSaver`, whose key-metric record (the best score
    so far and the evaluator's ``best_metric``) has a ``state_dict``: put this saver in a :class:`ResumableCheckpoint`
    ``save_dict`` and a resumed run keeps ``model.pt`` unless a later validation beats the best one before the stop.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._engine: Engine | None = None
        for ckpt in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if ckpt is not None:
                ckpt.save_handler = AtomicDiskSaver(self.save_dir, ckpt.save_handler.filename)

    def attach(self, engine: Engine) -> None:
        self._engine = engine
        super().attach(engine)

    def state_dict(self) -> dict:
        state = self._engine.state if self._engine is not None else None
        saved = self._key_metric_checkpoint.state_dict()["_saved"] if self._key_metric_checkpoint else []
        return {"_saved": [(float(p), f) for p, f in saved], "best_metric": float(getattr(state, "best_metric", -1)),
                "best_metric_epoch": int(getattr(state, "best_metric_epoch", -1))}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the best score of files still present; the evaluator's best metric when attached."""
        if self._key_metric_checkpoint is not None:
            fixed = self._key_metric_checkpoint.save_handler.filename  # e.g. model.pt whatever the score
            saved = [(p, f) for p, f in state_dict["_saved"] if os.path.isfile(os.path.join(self.save_dir, fixed or f))]
            self._key_metric_checkpoint.load_state_dict({"_saved": saved})
        if self._engine is not None and state_dict.get("best_metric_epoch", -1) >= 0:
            self._engine.state.best_metric = state_dict["best_metric"]
            self._engine.state.best_metric_epoch = state_dict["best_metric_epoch"]


def _one_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[-1][:200]}" if lines else type(err).__name__


class ResumableCheckpoint:
    """Crash-safe checkpoints of a training run in ``directory``, and resuming from them.

    Every ``save_interval`` epochs and when training completes, ``save_dict`` plus the trainer's state and the
    random generators' (:class:`RandomState`) go to ``checkpoint_iteration=<N>.pt`` through ignite's ``Checkpoint``
    with an :class:`AtomicDiskSaver`; the newest ``n_saved`` files are kept. When training stops on an exception
    (e.g. Ctrl-C) the state is saved too, but only if it is whole: not inside a training step, past the last
    checkpoint, with finite weights; it never replaces an existing file.

    On ``STARTED`` the newest checkpoint that can be read is loaded; an unreadable one (a truncated file of a run
    killed while writing with an older release, a damaged disk) is reported in one warning line, renamed to
    ``<name>.corrupt`` and an older one tried; with none readable the run starts from scratch with a warning. A
    checkpoint that reads but does not fit the configured training is a one-line error (exit status 2).
    Put the validator's :class:`AtomicCheckpointSaver` in ``save_dict`` to carry the best validation score over.

    The trainer is added at ``attach`` time, which keeps bundle configs free of a circular reference. In a
    distributed run every rank resumes but only rank 0 writes checkpoints.
    """

    def __init__(self, directory: str, save_dict: dict, save_interval: int = 1, resume: bool = True, map_location=None,
                 n_saved: int = 2):
        self.directory, self.save_dict, self.save_interval = directory, save_dict, save_interval
        self.resume, self.map_location, self.n_saved = resume, map_location, n_saved
        self._saved_iteration: int | None = None  # None until resuming has finished
        self._completed = -1  # the last training step that finished
        self._checkpoint: Checkpoint | None = None

    def attach(self, engine: Engine) -> None:
        objects = {**self.save_dict, "trainer": engine, "random_state": RandomState()}
        self._modules = [m for m in self.save_dict.values() if isinstance(m, torch.nn.Module)]
        engine.add_event_handler(Events.STARTED, self._resume, objects)
        if idist.get_rank() != 0:
            return
        self._checkpoint = Checkpoint(objects, AtomicDiskSaver(self.directory), score_name="iteration",
                                      score_function=lambda e: e.state.iteration, n_saved=self.n_saved)
        engine.add_event_handler(Events.COMPLETED, self._save)
        engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: setattr(self, "_completed", e.state.iteration))
        engine.add_event_handler(Events.EXCEPTION_RAISED, self._save_on_exception)

    def _save(self, engine: Engine) -> None:
        if engine.state.iteration == self._saved_iteration:
            return
        self._checkpoint(engine)
        self._saved_iteration = engine.state.iteration
        engine.logger.info(f"saved checkpoint {self._checkpoint.last_checkpoint} at epoch {engine.state.epoch}")

    def _save_on_exception(self, engine: Engine, err: BaseException) -> None:
        iteration = engine.state.iteration
        if self._saved_iteration is None:  # resuming failed: that error says it all
            raise err
        if iteration <= self._saved_iteration:
            why = "nothing trained since the last checkpoint"
        elif iteration != self._completed:
            why = "it stopped inside a training step, whose state may be half-updated"
        elif not all(torch.isfinite(p).all() for m in self._modules for p in m.parameters()):
            why = "non-finite weights"
        else:
            why = None
            try:
                self._save(engine)
            except Exception as save_err:  # noqa: BLE001 - the original exception matters more
                engine.logger.warning(f"could not save a checkpoint after the exception ({_one_line(save_err)})")
        if why:
            engine.logger.warning(f"stopped at iteration {iteration}: no checkpoint written ({why}); a rerun resumes "
                                  f"from the newest checkpoint in {self.directory}")
        raise err

    def _resume(self, engine: Engine, objects: dict) -> None:
        if self.resume:
            self._load_newest(engine, objects)
        self._saved_iteration = self._completed = engine.state.iteration
        if self._checkpoint is None:
            return
        partial = [f for f in glob.glob(os.path.join(self.directory, "tmp*")) if PARTIAL.match(os.path.basename(f))]
        for path in partial:
            os.remove(path)
        if partial:
            engine.logger.warning(f"removed {len(partial)} partial file(s) of an interrupted save from {self.directory}")
        files = checkpoints_newest_first(self.directory)[::-1]  # those there count towards n_saved (oldest first)
        self._checkpoint.load_state_dict({"_saved": [(checkpoint_iteration(f), os.path.basename(f)) for f in files]})
        if not engine.has_event_handler(self._save, Events.EPOCH_COMPLETED):
            # registered now, after every other handler, so that the epoch's validation (best score) is saved too
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_interval), self._save)

    def _load_newest(self, engine: Engine, objects: dict) -> None:
        files = checkpoints_newest_first(self.directory)
        for path in files:
            try:
                checkpoint = torch.load(path, map_location=self.map_location, weights_only=False)
                require(isinstance(checkpoint, dict) and "trainer" in checkpoint, path, "holds no trainer state")
            except Exception as err:  # noqa: BLE001 - any unreadable file is skipped, whatever the reason
                aside = path + ".corrupt"
                if idist.get_rank() == 0 and os.path.exists(path):
                    os.replace(path, aside)
                engine.logger.warning(f"skipping unreadable checkpoint {path} ({_one_line(err)}); kept as {aside}")
                continue
            self._load(engine, objects, checkpoint, path)
            return
        if files:
            engine.logger.warning(f"no readable checkpoint in {self.directory} ({len(files)} unreadable): "
                                  "TRAINING FROM SCRATCH")
        else:
            engine.logger.info(f"no checkpoint in {self.directory}: training from scratch")

    @exit_on_input_error
    def _load(self, engine: Engine, objects: dict, checkpoint: dict, path: str) -> None:
        max_epochs = engine.state.max_epochs
        missing = sorted(set(objects) - set(checkpoint))
        try:
            Checkpoint.load_objects({k: v for k, v in objects.items() if k in checkpoint}, checkpoint)
        except (RuntimeError, KeyError, ValueError) as err:
            raise InputError(path, f"does not fit this training configuration ({_one_line(err)}); "
                                   "move it away or use another run_dir") from None
        require(engine.state.epoch <= max_epochs, path,
                f"already trained for {engine.state.epoch} epochs, more than max_epochs={max_epochs}")
        engine.state.max_epochs = max_epochs
        engine.logger.info(f"resumed from {path} at epoch {engine.state.epoch}, iteration {engine.state.iteration}"
                           + (f" (it holds no {', '.join(missing)}: those start afresh)" if missing else ""))


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
