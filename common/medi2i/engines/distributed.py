"""Pieces of the multi-GPU overlays (``configs/multi_gpu_*.json``): which handlers run on which rank.

``torchrun`` starts one process per device; every rank trains, but checkpoints, logs, TensorBoard files and
progress bars come from rank 0 only (the model-zoo convention), while every rank still resumes from the last
checkpoint and runs validation (evaluators synchronise their metrics across ranks).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

import torch.distributed as dist

#: handler classes that write files or print, kept on rank 0 only
RANK_ZERO_ONLY = ("CheckpointSaver", "StatsHandler", "TensorBoardStatsHandler", "ProgressBar", "MetricsSaver",
                  "TensorBoardImageHandler", "ClearMLStatsHandler", "MLFlowHandler")


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def handlers_for_rank(handlers: Sequence | None, current_rank: int | None = None) -> list:
    """``handlers`` on rank 0; on other ranks without those in :data:`RANK_ZERO_ONLY` (by class name).

    A dropped TensorBoard handler has already opened its event file when it was built; that empty file is removed.
    """
    handlers = list(handlers or [])
    if (rank() if current_rank is None else current_rank) == 0:
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
