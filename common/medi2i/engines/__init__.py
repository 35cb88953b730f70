"""Training pieces MONAI does not ship: hybrid DDPM loss, noisy-image batches for guidance networks, resume,
rank-0-only handlers for multi-GPU runs."""

from .distributed import handlers_for_rank
from .handlers import AtomicCheckpointSaver, ProgressBar, RandomState, ResumableCheckpoint, latest_checkpoint, split_prediction
from .losses import HybridDiffusionLoss
from .prepare_batch import HybridPrepareBatch, NoisyImagePrepareBatch
from .settings import check_training

__all__ = ["AtomicCheckpointSaver", "RandomState", "check_training", "HybridDiffusionLoss", "HybridPrepareBatch", "NoisyImagePrepareBatch", "ProgressBar", "ResumableCheckpoint",
           "latest_checkpoint", "split_prediction", "handlers_for_rank"]
from . import aldm  # noqa: E402  (ALDM stages: VQ-GAN, MS-SPADE, latent diffusion)

from .label_dropout import LabelDropoutPrepareBatch, drop_labels  # noqa: E402

__all__ += ["LabelDropoutPrepareBatch", "drop_labels"]
