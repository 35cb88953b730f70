"""One sampler, many guidances: DDIM encode/decode and the gradient terms that steer it."""

from .analytic import GaussianEpsilon, GaussianPosteriorMeanRegressor
from .ddim import DDIMSampler, Guidance
from .guidance import RegressionGuidance, freeze
from .inferer import GuidedTranslationInferer
from .label_guidance import ClassifierGuidance, SegmentationGuidance, mean_bce

__all__ = ["DDIMSampler", "GuidedTranslationInferer", "Guidance", "RegressionGuidance", "freeze", "GaussianEpsilon", "GaussianPosteriorMeanRegressor",
           "ClassifierGuidance", "SegmentationGuidance", "mean_bce"]
from .analytic import GaussianConditionalEpsilon  # noqa: E402
from .conditional import ConcatConditioned, ConcatPrepareBatch, ConditionalDiffusionInferer, ConditionalSampler  # noqa: E402

__all__ += ["GaussianConditionalEpsilon", "ConcatConditioned", "ConcatPrepareBatch", "ConditionalDiffusionInferer", "ConditionalSampler"]
