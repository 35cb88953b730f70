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
from .latent_translation import ConcatConditionDenoiser, LatentTranslationInferer  # noqa: E402

from .analytic import ClassGaussianEpsilon  # noqa: E402
from .classifier_free import ClassConditionalDiffusionInferer, ClassConditionalSampler, guided_epsilon  # noqa: E402
from .generation_inferer import ContrastGenerationInferer, check_guidance_weight  # noqa: E402

__all__ += ["ClassGaussianEpsilon", "ClassConditionalDiffusionInferer", "ClassConditionalSampler", "guided_epsilon",
            "ContrastGenerationInferer", "check_guidance_weight"]
