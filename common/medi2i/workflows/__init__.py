"""Runners that bundle configs call: guided translation over many cases, evaluation."""

from .checkpoints import load_weights
from .growth_evaluation import GrowthEvaluation
from .scores import MeasuredTumourSize, RegressorScore
from .translate import GuidedTranslation, growth_targets

__all__ = ["GrowthEvaluation", "GuidedTranslation", "growth_targets", "load_weights", "MeasuredTumourSize", "RegressorScore"]

from .contrast_generation import ContrastGeneration, check_num_samples, generate  # noqa: E402

__all__ += ["ContrastGeneration", "check_num_samples", "generate"]

from .contrast_evaluation import ContrastEvaluation  # noqa: E402

__all__ += ["ContrastEvaluation"]
