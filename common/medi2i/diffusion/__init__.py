"""One sampler, many guidances: DDIM encode/decode and the gradient terms that steer it."""

from .analytic import GaussianEpsilon, GaussianPosteriorMeanRegressor
from .ddim import DDIMSampler, Guidance
from .guidance import RegressionGuidance, freeze
from .inferer import GuidedTranslationInferer
from .label_guidance import ClassifierGuidance, SegmentationGuidance, mean_bce

__all__ = ["DDIMSampler", "GuidedTranslationInferer", "Guidance", "RegressionGuidance", "freeze", "GaussianEpsilon", "GaussianPosteriorMeanRegressor",
           "ClassifierGuidance", "SegmentationGuidance", "mean_bce"]
from .latent_translation import ConcatConditionDenoiser, LatentTranslationInferer  # noqa: E402
