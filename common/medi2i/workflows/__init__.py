"""Runners that bundle configs call: guided translation over many cases, evaluation."""

from .anomaly_evaluation import AnomalyEvaluation
from ..networks.checkpoints import load_weights
from .growth_evaluation import GrowthEvaluation
from .inpainting_evaluation import InpaintingEvaluation
from .scores import MeasuredTumourSize, RegressorScore
from .translate import GuidedTranslation, growth_targets

__all__ = ["GrowthEvaluation", "GuidedTranslation", "growth_targets", "load_weights", "MeasuredTumourSize", "RegressorScore",
           "AnomalyEvaluation", "InpaintingEvaluation"]
from .baselines import BiharmonicFill, Interpolation, MedianFilter, NearestFill, NoisyInput, NonLocalMeans  # noqa: E402
from .restoration import ConditionalRestoration, RestorationEvaluation  # noqa: E402

__all__ += ["BiharmonicFill", "Interpolation", "MedianFilter", "NearestFill", "NoisyInput", "NonLocalMeans", "ConditionalRestoration",
            "RestorationEvaluation"]
from .multimodal_translation import MultiModalEvaluation, VolumeTranslation  # noqa: E402

from .contrast_generation import ContrastGeneration, check_num_samples, generate  # noqa: E402

__all__ += ["ContrastGeneration", "check_num_samples", "generate"]

from .contrast_evaluation import ContrastEvaluation  # noqa: E402

__all__ += ["ContrastEvaluation"]
