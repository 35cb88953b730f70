"""Pieces of the multi-GPU overlays (``configs/multi_gpu_*.json``): process-group set-up and tear-down, and which
handlers run on which rank.

``torchrun`` starts one process per device; every rank trains, but checkpoints, logs, TensorBoard files and
progress bars come from rank 0 only (the model-zoo convention), while every rank still resumes from the last
checkpoint and runs validation (evaluators synchronise their metrics across ranks).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

import ignite.distributed as idist
import torch
import torch.distributed as dist
from monai.utils import set_determinism

#: handler classes that write files or print, kept on rank 0 only
RANK_ZERO_ONLY = ("CheckpointSaver", "AtomicCheckpointSaver", "StatsHandler", "TensorBoardStatsHandler", "ProgressBar", "MetricsSaver",
                  "TensorBoardImageHandler", "ClearMLStatsHandler", "MLFlowHandler")


def setup(device: torch.device, seed: int) -> None:
    """Join the process group ``torchrun`` describes (NCCL on CUDA, gloo on CPU; kept when already initialised),
    tell ignite about it, select ``device`` on CUDA and seed each rank with ``seed + rank``."""
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    idist.sync()
    if torch.cuda.is_available():
        torch.cuda.set_device(device)
    set_determinism(seed=seed + dist.get_rank())


def teardown() -> None:
    """Print ``rank r of w finished``, wait for every rank (none tears the group down while another still works),
    then destroy the process group."""
    print(f"rank {dist.get_rank()} of {dist.get_world_size()} finished", flush=True)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    idist.sync()  # back to ignite's serial model: idist.get_rank() is 0 again


def handlers_for_rank(handlers: Sequence | None, current_rank: int | None = None) -> list:
    """``handlers`` on rank 0; on other ranks without those in :data:`RANK_ZERO_ONLY` (by class name).

    A dropped TensorBoard handler has already opened its event file when it was built; that empty file is removed.
    """
    handlers = list(handlers or [])
    if (idist.get_rank() if current_rank is None else current_rank) == 0:
        return handlers
    kept = [h for h in handlers if type(h).__name__ not in RANK_ZERO_ONLY]
    for handler in handlers:
        if handler not in kept and getattr(handler, "internal_writer", False):
            _remove_event_files(handler._writer)
    return kept


def _remove_event_files(writer) -> None:
    """Close a SummaryWriter and delete the event files this process opened in its log folder."""
    writer.close()
    for path in glob.glob(os.path.join(writer.get_logdir(), f"events.out.tfevents.*.{os.getpid()}.*")):
        os.remove(path)
