"""One sampler, many guidances: DDIM encode/decode and the gradient terms that steer it."""

from .analytic import GaussianEpsilon, GaussianPosteriorMeanRegressor
from .ddim import DDIMSampler, Guidance
from .guidance import RegressionGuidance, freeze
from .inferer import GuidedTranslationInferer

__all__ = ["DDIMSampler", "GuidedTranslationInferer", "Guidance", "RegressionGuidance", "freeze", "GaussianEpsilon", "GaussianPosteriorMeanRegressor"]
from .latent_translation import ConcatConditionDenoiser, LatentTranslationInferer  # noqa: E402
